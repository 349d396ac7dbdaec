"""Dots that leave trails, by a hand-written updater and by TracedPath (covers PointWithTrace)."""

# ruff: noqa: F403, F405
from manim import *


class TrailingDot(Scene):
    def construct(self):
        walker = Dot(LEFT, color=YELLOW)
        trail = VMobject(color=YELLOW)
        trail.set_points_as_corners([walker.get_center(), walker.get_center()])

        def lengthen(path):
            grown = path.copy()
            grown.add_points_as_corners([walker.get_center()])
            path.become(grown)

        trail.add_updater(lengthen)
        partner = Dot(2 * RIGHT, color=BLUE)
        ribbon = TracedPath(partner.get_center, stroke_color=BLUE, stroke_width=4)
        self.add(trail, walker, ribbon, partner)
        self.play(
            Rotating(walker, angle=PI, about_point=ORIGIN),
            Rotating(partner, angle=-PI, about_point=3 * RIGHT),
            run_time=1.2,
        )
        self.play(walker.animate.shift(DOWN), partner.animate.shift(UP), run_time=0.5)
        self.play(walker.animate.shift(RIGHT), run_time=0.5)
        self.wait(0.3)
