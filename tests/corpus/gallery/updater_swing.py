"""A hand swung by time-based updaters that are swapped during waits (covers RotationUpdater)."""

# ruff: noqa: F403, F405
from manim import *


class PendulumUpdaters(Scene):
    def construct(self):
        def swing_out(mob, dt):
            mob.rotate_about_origin(1.5 * dt)

        def swing_back(mob, dt):
            mob.rotate(-1.5 * dt, about_point=ORIGIN)

        rest = Line(ORIGIN, 2 * DOWN, color=GREY)
        hand = Line(ORIGIN, 2 * DOWN, color=ORANGE)
        hand.add_updater(swing_out)
        self.add(rest, hand)
        self.wait(1)
        hand.remove_updater(swing_out)
        hand.add_updater(swing_back)
        self.wait(1)
        hand.clear_updaters()
        self.wait(0.5)
