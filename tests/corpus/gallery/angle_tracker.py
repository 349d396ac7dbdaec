"""An angle that opens and closes, driven by a ValueTracker (covers MovingAngle)."""

# ruff: noqa: F403, F405
from manim import *


class OpeningAngle(Scene):
    def construct(self):
        pivot = 1.5 * LEFT + DOWN
        degrees = ValueTracker(30)
        base = Line(pivot, pivot + 3 * RIGHT)
        template = Line(pivot, pivot + 3 * RIGHT, color=BLUE)

        def turned_arm():
            return template.copy().rotate(degrees.get_value() * DEGREES, about_point=pivot)

        arm = turned_arm()

        def marker():
            return Angle(base, arm, radius=0.7, other_angle=False, color=YELLOW)

        def label_spot():
            return Angle(base, arm, radius=0.7 + 2 * SMALL_BUFF).point_from_proportion(0.5)

        arc = marker()
        label = MathTex(r"\alpha").move_to(label_spot())
        self.add(base, arm, arc, label)
        arm.add_updater(lambda m: m.become(turned_arm()))
        arc.add_updater(lambda m: m.become(marker()))
        label.add_updater(lambda m: m.move_to(label_spot()))
        self.play(degrees.animate.set_value(120), run_time=0.8)
        self.play(degrees.animate.increment_value(-60), run_time=0.6)
        self.play(label.animate.set_color(ORANGE), run_time=0.3)
        self.play(degrees.animate.set_value(170), run_time=0.8)
        self.wait(0.3)
