"""Areas between and under curves, dashed markers and Riemann bars (covers GraphAreaPlot)."""

# ruff: noqa: F403, F405
from manim import *


class AreasUnderCurves(Scene):
    def construct(self):
        axes = Axes(
            x_range=(0, 6, 1),
            y_range=(0, 5, 1),
            x_length=9,
            y_length=5.5,
            axis_config={"include_numbers": True, "font_size": 24},
        )
        upper = axes.plot(lambda x: 4 - 0.25 * (x - 3) ** 2, x_range=(0, 6), color=BLUE)
        lower = axes.plot(lambda x: 0.5 + 0.1 * x**2, x_range=(0, 5), color=GREEN)
        left_mark = axes.get_vertical_line(
            axes.input_to_graph_point(1, upper), line_func=DashedLine, color=YELLOW
        )
        right_mark = axes.get_vertical_line(
            axes.input_to_graph_point(4, upper), line_func=DashedLine, color=YELLOW
        )
        band = axes.get_area(upper, x_range=(1, 4), bounded_graph=lower, color=GREY, opacity=0.5)
        corner = axes.get_area(lower, x_range=(0.2, 1), color=(GREEN_B, GREEN_D), opacity=0.8)
        bars = axes.get_riemann_rectangles(
            upper, x_range=(4, 6), dx=0.25, color=(ORANGE, RED), input_sample_type="right", fill_opacity=0.6
        )
        self.add(axes, band, corner, bars, upper, lower, left_mark, right_mark)
