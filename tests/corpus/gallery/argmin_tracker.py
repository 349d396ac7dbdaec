"""A dot slides down a curve to its numerically found minimum (covers ArgMinExample)."""

# ruff: noqa: F403, F405
from manim import *


class ValleyFinder(Scene):
    def construct(self):
        axes = Axes(
            x_range=(0, 6, 1), y_range=(0, 5, 1), x_length=8, y_length=5, axis_config={"include_tip": False}
        ).shift(0.3 * DOWN)

        def height(x):
            return 0.3 * (x - 4) ** 2 + 0.6 * np.sin(2 * x) + 1

        curve = axes.plot(height, color=TEAL)
        samples = np.linspace(*axes.x_range[:2], 601)
        lowest = samples[np.argmin(height(samples))]
        probe = ValueTracker(0.5)
        ball = Dot(axes.coords_to_point(0.5, height(0.5)), color=RED)
        ball.add_updater(lambda m: m.move_to(axes.c2p(probe.get_value(), height(probe.get_value()))))
        readout = DecimalNumber(height(0.5), num_decimal_places=2).to_corner(UR)
        readout.add_updater(lambda m: m.set_value(height(probe.get_value())))
        self.add(axes, curve, ball, readout)
        self.play(probe.animate.set_value(lowest), run_time=1.5)
        self.play(Flash(ball), run_time=0.5)
        self.wait(0.3)
