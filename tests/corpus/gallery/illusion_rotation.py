"""The 3D illusion camera rotation started and stopped (covers ThreeDCameraIllusionRotation)."""

# ruff: noqa: F403, F405
from manim import *


class WobbleCamera(ThreeDScene):
    def construct(self):
        axes = ThreeDAxes()
        outline = Triangle(color=ORANGE).scale(1.5)
        self.set_camera_orientation(phi=70 * DEGREES, theta=20 * DEGREES)
        self.add(axes, outline)
        self.begin_3dillusion_camera_rotation(rate=1.5)
        self.wait(2)
        self.stop_3dillusion_camera_rotation()
