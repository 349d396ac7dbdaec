"""A redrawn rectangle under a hyperbola, resized by a ValueTracker (covers PolygonOnAxes)."""

# ruff: noqa: F403, F405
from manim import *


class ShrinkingBox(Scene):
    def construct(self):
        axes = Axes(x_range=(0, 5, 1), y_range=(0, 5, 1), x_length=5.5, y_length=5.5).shift(LEFT)
        curve = axes.plot(lambda x: 4 / x, x_range=(0.8, 5, 0.02), color=YELLOW, use_smoothing=False)
        corner = ValueTracker(1)

        def box():
            x = corner.get_value()
            outline = Polygon(*[axes.c2p(*p) for p in self.corners_of(x, 4 / x)], color=BLUE)
            outline.stroke_width = 2
            outline.set_fill(BLUE, opacity=0.4)
            return outline

        rectangle = always_redraw(box)
        tip = always_redraw(lambda: Dot(axes.c2p(corner.get_value(), 4 / corner.get_value()), color=RED))
        tip.set_z_index(5)
        self.add(axes, curve)
        self.play(Create(rectangle), FadeIn(tip), run_time=0.6)
        self.play(corner.animate.set_value(4), run_time=0.8)
        self.play(corner.animate.set_value(2), run_time=0.8)
        self.wait(0.3)

    def corners_of(self, width, height):
        return [(0, 0), (width, 0), (width, height), (0, height)]
