"""Two periodic curves on configured axes with labels and a marker line (covers SinAndCosFunctionPlot)."""

# ruff: noqa: F403, F405
from manim import *


class WaveAxes(Scene):
    def construct(self):
        axes = Axes(
            x_range=(-2 * PI, 2 * PI, PI / 2),
            y_range=(-2, 2, 1),
            x_length=10,
            y_length=5,
            axis_config={"color": BLUE_B},
            x_axis_config={
                "numbers_to_include": [-6, -4, -2, 2, 4, 6],
                "numbers_with_elongated_ticks": [-2 * PI, 2 * PI],
                "decimal_number_config": {"num_decimal_places": 0},
            },
            y_axis_config={"numbers_to_include": [-1, 1]},
            tips=False,
        )
        names = axes.get_axis_labels(x_label="t", y_label="y")
        swell = axes.plot(lambda t: 1.5 * np.sin(t), color=ORANGE)
        ripple = axes.plot(lambda t: np.cos(2 * t), color=GREEN, x_range=(-2 * PI, 2 * PI, 0.05))
        swell_label = axes.get_graph_label(swell, r"1.5\sin t", x_val=PI / 2, direction=UP)
        ripple_label = axes.get_graph_label(ripple, r"\cos 2t", x_val=-5, direction=DOWN / 2, color=GREEN)
        marker = axes.get_vertical_line(axes.i2gp(3 * PI / 2, swell), color=YELLOW, line_func=Line)
        marker_label = axes.get_graph_label(
            swell, r"t=\tfrac{3\pi}{2}", x_val=3 * PI / 2, direction=DR, color=WHITE
        )
        drawing = VGroup(axes, swell, ripple, marker)
        captions = VGroup(names, swell_label, ripple_label, marker_label)
        self.add(drawing, captions)
