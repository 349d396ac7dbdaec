"""One shape shifted, recoloured, scaled, rotated and sheared in turn (covers MovingAround)."""

# ruff: noqa: F403, F405
from manim import *


class ShapeChoreography(Scene):
    def construct(self):
        tile = Rectangle(width=2, height=1.2, color=GREEN, fill_opacity=0.8)
        self.add(tile)
        self.play(tile.animate.shift(2 * RIGHT + 0.5 * UP), run_time=0.4)
        self.play(tile.animate.set_fill(PINK, opacity=1), run_time=0.4)
        self.play(tile.animate.scale(0.5).rotate(PI / 6), run_time=0.4)
        self.play(tile.animate.stretch(2, 1), run_time=0.3)
        self.play(ApplyMatrix([[1, 0.6], [0, 1]], tile), run_time=0.5)
        self.play(tile.animate.set_stroke(WHITE, width=6).shift(3 * LEFT), run_time=0.4)
