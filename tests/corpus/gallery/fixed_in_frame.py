"""3D axes under a tilted camera with a title pinned to the screen (covers FixedInFrameMObjectTest)."""

# ruff: noqa: F403, F405
from manim import *


class PinnedTitle(ThreeDScene):
    def construct(self):
        axes = ThreeDAxes(x_range=(-4, 4, 1), y_range=(-4, 4, 1), z_range=(-3, 3, 1))
        self.set_camera_orientation(phi=65 * DEGREES, theta=30 * DEGREES)
        heading = Text("Pinned to the screen", font_size=36, color=YELLOW)
        self.add_fixed_in_frame_mobjects(heading)
        heading.to_corner(UR)
        block = Cube(side_length=1.5, fill_opacity=0.6, fill_color=BLUE)
        self.add(axes, block)
