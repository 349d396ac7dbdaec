"""An ambient camera rotation, stopped, then a camera move (covers ThreeDCameraRotation)."""

# ruff: noqa: F403, F405
from manim import *


class OrbitingCamera(ThreeDScene):
    def construct(self):
        axes = ThreeDAxes()
        plate = Square(side_length=2, color=BLUE, fill_opacity=0.3)
        self.set_camera_orientation(phi=60 * DEGREES, theta=-45 * DEGREES)
        self.add(axes, plate)
        self.begin_ambient_camera_rotation(rate=0.6)
        self.wait(1)
        self.stop_ambient_camera_rotation()
        self.move_camera(phi=45 * DEGREES, theta=0, run_time=1)
        self.wait(0.5)
