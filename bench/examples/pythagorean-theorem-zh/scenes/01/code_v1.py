from manim import *


class Scene1(Scene):
    def construct(self):
        title = Text("直角三角形", font="Noto Sans CJK SC", font_size=40).to_edge(UP)
        a, b, c = [-2, -1.5, 0], [2, -1.5, 0], [-2, 1.5, 0]
        triangle = Polygon(a, b, c, color=WHITE)
        angle = RightAngle(Line(a, b), Line(a, c), length=0.35, quadrant=(1, 1))
        leg_a = MathTex("a").next_to(Line(a, c), LEFT)
        leg_b = MathTex("b").next_to(Line(a, b), DOWN)
        hyp = MathTex("c", color=YELLOW).move_to([0.3, 0.3, 0])
        self.play(Write(title), run_time=1)
        self.play(Create(triangle), Create(angle), run_time=1.5)
        self.next_section()
        self.play(FadeIn(leg_a), FadeIn(leg_b), run_time=1)
        self.next_section()
        self.play(FadeIn(hyp, scale=1.5), run_time=1)
        self.wait(0.5)
