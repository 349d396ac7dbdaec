"""A bump-shaped surface, scaled, styled and checkered (covers ThreeDSurfacePlot)."""

# ruff: noqa: F403, F405
from manim import *


class BumpSurface(ThreeDScene):
    def construct(self):
        self.set_camera_orientation(phi=70 * DEGREES, theta=-40 * DEGREES)

        def bump(u, v):
            return np.array([u, v, np.exp(-(u * u + v * v) / 0.6)])

        hill = Surface(bump, u_range=(-2, 2), v_range=(-2, 2), resolution=(20, 20))
        hill.scale(1.5, about_point=ORIGIN)
        hill.set_style(fill_opacity=0.9, stroke_color=WHITE, stroke_width=0.5)
        hill.set_fill_by_checkerboard(PURPLE, TEAL, opacity=0.7)
        self.add(ThreeDAxes(), hill)
