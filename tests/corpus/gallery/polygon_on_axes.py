"""A redrawn rectangle under a hyperbola, resized by a ValueTracker (covers PolygonOnAxes)."""

# ruff: noqa: F403, F405
from manim import *


class ShrinkingBox(Scene):
    def construct(self):
        axes = Axes(x_range=(0, 5, 1), y_range=(0, 5, 1), x_length=5.5, y_length=5.5).shift(LEFT)
        curve = axes.plot(lambda x: 4 / x, x_range=(0.8, 5), color=YELLOW)
        corner = ValueTracker(1)

        def box():
            x = corner.get_value()
            y = 4 / x
            points = [axes.c2p(0, 0), axes.c2p(x, 0), axes.c2p(x, y), axes.c2p(0, y)]
            return Polygon(*points, color=BLUE, fill_opacity=0.4, stroke_width=2)

        rectangle = always_redraw(box)
        tip = always_redraw(lambda: Dot(axes.c2p(corner.get_value(), 4 / corner.get_value()), color=RED))
        self.add(axes, curve)
        self.play(Create(rectangle), FadeIn(tip), run_time=0.6)
        self.play(corner.animate.set_value(4), run_time=0.8)
        self.play(corner.animate.set_value(2), run_time=0.8)
        self.wait(0.3)
