from manim import *


class Scene3(Scene):
    def construct(self):
        title = Text("Beispiel: 3, 4, 5", font="DejaVu Sans", font_size=40).to_edge(UP)
        lines = VGroup(
            MathTex("3^2 + 4^2 = c^2"),
            MathTex("9 + 16 = 25"),
            MathTex("c = 5", color=YELLOW),
        ).arrange(DOWN, buff=0.5)
        self.play(Write(title), run_time=1)
        self.play(FadeIn(lines[0], shift=UP * 0.3), run_time=1)
        self.next_section()
        self.play(FadeIn(lines[1], shift=UP * 0.3), run_time=1)
        self.next_section()
        self.play(FadeIn(lines[2], shift=UP * 0.3), run_time=1)
        self.play(Indicate(lines[-1]), run_time=1)
        self.wait(0.5)
