"""A dot grows, jumps, travels along a path and rotates (covers PointMovingOnShapes)."""

# ruff: noqa: F403, F405
from manim import *


class DotTour(Scene):
    def construct(self):
        track = Square(side_length=2, color=TEAL).shift(2 * LEFT)
        marker = Dot(color=YELLOW)
        start = Dot(track.get_start(), color=ORANGE)
        bar = Line(2 * RIGHT, 4 * RIGHT)
        self.add(marker, bar)
        self.play(GrowFromCenter(track), run_time=0.5)
        self.play(Transform(marker, start), run_time=0.4)
        self.play(MoveAlongPath(marker, track), rate_func=linear, run_time=1)
        self.play(
            Rotating(marker, angle=PI, about_point=ORIGIN),
            Rotate(bar, angle=PI / 2, about_point=3 * RIGHT),
            run_time=0.6,
        )
        self.wait(0.4)
