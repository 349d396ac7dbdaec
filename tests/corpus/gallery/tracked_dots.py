"""Two dots steered by two ValueTrackers, with live readouts (covers MovingDots)."""

# ruff: noqa: F403, F405
from manim import *


class TwoTrackers(Scene):
    def construct(self):
        across = ValueTracker(-2)
        upward = ValueTracker(-1)
        runner = Dot(color=BLUE)
        climber = Dot(color=GREEN)
        VGroup(runner, climber).arrange(RIGHT, buff=2)
        link = Line(runner.get_center(), climber.get_center(), color=RED)
        runner.add_updater(lambda m: m.set_x(across.get_value()))
        climber.add_updater(lambda m: m.set_y(upward.get_value()))
        link.add_updater(lambda m: m.become(Line(runner.get_center(), climber.get_center(), color=RED)))
        readout = Variable(across.get_value(), "x", num_decimal_places=1).to_corner(UL)
        readout.add_updater(lambda m: m.tracker.set_value(across.get_value()))
        height = DecimalNumber(upward.get_value(), num_decimal_places=2, color=GREEN).to_corner(UR)
        height.add_updater(lambda m: m.set_value(upward.get_value()))
        self.add(runner, climber, link, readout, height)
        self.play(across.animate.set_value(3), run_time=0.8)
        self.play(upward.animate.set_value(2), run_time=0.8)
        self.play(across.animate.set_value(0), upward.animate.set_value(-2), run_time=0.8)
        self.wait(0.4)
