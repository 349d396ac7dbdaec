"""LaTeX titles, a staggered fade-out and a grid bent by non-linear maps (covers OpeningManim)."""

# ruff: noqa: F403, F405
from manim import *


class WarpedGrid(Scene):
    def construct(self):
        heading = Tex(r"A \LaTeX{} heading")
        series = MathTex(r"\sum_{k=0}^{\infty} \frac{1}{2^k} = 2")
        VGroup(heading, series).arrange(DOWN, buff=0.5)
        self.play(Write(heading), FadeIn(series, shift=UP), run_time=0.6)
        corner_title = Tex("Moved to a corner").to_corner(UL)
        self.play(
            Transform(heading, corner_title),
            LaggedStart(*[FadeOut(glyph, shift=DOWN) for glyph in series[0]], lag_ratio=0.1),
            run_time=0.6,
        )
        plane = NumberPlane(x_range=(-8, 8), y_range=(-5, 5))
        plane_title = Tex("A grid").scale(1.2).move_to(corner_title, UL)
        self.add(plane, plane_title)  # the title stays drawn above the grid
        self.play(
            FadeOut(heading), FadeIn(plane_title, shift=DOWN), Create(plane, lag_ratio=0.05), run_time=0.8
        )
        plane.prepare_for_nonlinear_transform()
        self.play(
            plane.animate.apply_function(lambda p: p + 0.4 * np.array([np.cos(p[1]), np.sin(p[0]), 0])),
            run_time=0.6,
        )
        self.play(ApplyPointwiseFunction(lambda p: 0.8 * p, plane), run_time=0.4)
        self.wait(0.2)
