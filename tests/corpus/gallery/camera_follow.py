"""A moving camera zooms in, follows a dot along a curve and restores (covers FollowingGraphCamera)."""

# ruff: noqa: F403, F405
from manim import *


class CameraChase(MovingCameraScene):
    def construct(self):
        self.camera.frame.save_state()
        axes = Axes(x_range=(0, 10, 1), y_range=(-2, 2, 1), x_length=12, y_length=4)
        wave = axes.plot(lambda x: 1.5 * np.sin(x) * np.exp(-0.1 * x), x_range=(0, 3 * PI), color=PURPLE)
        rider = Dot(wave.get_start(), color=ORANGE)
        first = Dot(axes.i2gp(wave.t_min, wave))
        last = Dot(axes.i2gp(wave.t_max, wave))
        self.add(axes, wave, first, last, rider)
        self.play(self.camera.frame.animate.scale(0.4).move_to(rider), run_time=0.7)

        def follow(frame):
            frame.move_to(rider.get_center())

        self.camera.frame.add_updater(follow)
        self.play(MoveAlongPath(rider, wave), rate_func=linear, run_time=1.4)
        self.camera.frame.remove_updater(follow)
        self.play(Restore(self.camera.frame), run_time=0.7)
