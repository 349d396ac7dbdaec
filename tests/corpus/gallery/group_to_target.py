"""A group moved so that one member lands on a target, and a point cloud (covers MovingGroupToDestination)."""

# ruff: noqa: F403, F405
from manim import *


class RowToCorner(Scene):
    def construct(self):
        row = VGroup(*[Square(0.4, color=c, fill_opacity=1) for c in (BLUE, TEAL, ORANGE, GREEN)])
        row.arrange(RIGHT, buff=0.3).scale(1.2)
        goal = Star(color=YELLOW, fill_opacity=1).scale(0.3).move_to([-3, -2, 0])
        haze = PointCloudDot(center=[3, 2, 0], radius=0.8, color=PINK)
        self.add(row, goal, haze)
        self.play(
            row.animate.shift(goal.get_center() - row[1].get_center()),
            haze.animate.shift(2 * LEFT),
            run_time=1,
        )
        self.wait(0.5)
