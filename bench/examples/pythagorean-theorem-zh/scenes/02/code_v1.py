from manim import *


class Scene2(Scene):
    def construct(self):
        a, b = 1.2, 0.9
        p0, p1, p2 = np.array([0, 0, 0]), np.array([a, 0, 0]), np.array([0, b, 0])
        triangle = Polygon(p0, p1, p2, color=WHITE)
        square_a = Polygon(p0, p1, p1 + [0, -a, 0], p0 + [0, -a, 0], color=BLUE, fill_opacity=0.5)
        square_b = Polygon(p0, p2, p2 + [-b, 0, 0], p0 + [-b, 0, 0], color=GREEN, fill_opacity=0.5)
        side = p1 - p2
        normal = np.array([side[1], -side[0], 0]) * -1
        square_c = Polygon(p2, p1, p1 + normal, p2 + normal, color=ORANGE, fill_opacity=0.5)
        VGroup(triangle, square_a, square_b, square_c).scale(1.6).move_to(UP * 0.5)
        equation = MathTex("a^2", "+", "b^2", "=", "c^2").to_edge(DOWN, buff=0.8)
        equation[0].set_color(BLUE)
        equation[2].set_color(GREEN)
        equation[4].set_color(ORANGE)
        self.play(Create(triangle), run_time=1)
        self.play(DrawBorderThenFill(square_a), DrawBorderThenFill(square_b), run_time=1.5)
        self.play(DrawBorderThenFill(square_c), run_time=1)
        self.next_section()
        self.play(Write(equation), run_time=1.5)
        self.wait(0.5)
