"""Raster images built from numpy arrays, framed by rectangles (covers GradientImageFromArray)."""

# ruff: noqa: F403, F405
from manim import *


class ArrayPicture(Scene):
    def construct(self):
        ramp = np.tile(np.linspace(0, 255, 128), (128, 1)).T.astype(np.uint8)
        shade = ImageMobject(ramp).scale(3).shift(2.5 * LEFT)
        shade.outline = SurroundingRectangle(shade, color=ORANGE, buff=0.1)
        rows, cols = np.mgrid[0:64, 0:64]
        colours = np.zeros((64, 64, 3), dtype=np.uint8)
        colours[..., 0] = rows * 4
        colours[..., 2] = cols * 4
        colours[..., 1] = ((rows // 8 + cols // 8) % 2) * 120
        tiles = ImageMobject(colours).set_height(3).shift(2.5 * RIGHT)
        self.add(shade, shade.outline, tiles, SurroundingRectangle(tiles, color=BLUE, buff=0.1))
