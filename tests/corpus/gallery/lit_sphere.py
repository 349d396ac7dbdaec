"""A checkered parametric sphere lit from a moved light source (covers ThreeDLightSourcePosition)."""

# ruff: noqa: F403, F405
from manim import *


class SideLitSphere(ThreeDScene):
    def construct(self):
        axes = ThreeDAxes()
        ball = Surface(
            lambda u, v: 1.8 * np.array([np.cos(v) * np.sin(u), np.sin(v) * np.sin(u), np.cos(u)]),
            u_range=(0, PI),
            v_range=(0, TAU),
            resolution=(12, 24),
            checkerboard_colors=[GREEN_C, GREEN_E],
        )
        self.renderer.camera.light_source.move_to(4 * LEFT + 2 * OUT)
        self.set_camera_orientation(phi=70 * DEGREES, theta=-60 * DEGREES)
        self.add(axes, ball)
