"""Measured points joined into a line graph with LaTeX axis labels, and a table (covers HeatDiagramPlot)."""

# ruff: noqa: F403, F405
from manim import *


class CoolingCurve(Scene):
    def construct(self):
        axes = Axes(
            x_range=(0, 40, 10),
            y_range=(-10, 30, 10),
            x_length=6.5,
            y_length=5,
            axis_config={"font_size": 20},
            x_axis_config={"numbers_to_include": np.arange(0, 41, 10)},
            y_axis_config={"numbers_to_include": np.arange(-10, 31, 10)},
        )
        names = axes.get_axis_labels(Tex(r"$t$ [min]").scale(0.6), Tex(r"$T$ [$^\circ$C]").scale(0.6))
        readings = axes.plot_line_graph(
            x_values=[0, 5, 15, 30, 38],
            y_values=[25, 12, 0, -5, -8],
            line_color=TEAL,
            vertex_dot_style={"fill_color": ORANGE},
            stroke_width=3,
        )
        plot = VGroup(axes, names, readings).to_edge(LEFT)
        table = Table(
            [["0", "25"], ["15", "0"], ["38", "-8"]],
            col_labels=[Text("min"), Text("°C")],
            include_outer_lines=True,
        )
        table.scale(0.45).to_edge(RIGHT)
        self.add(plot, table)
