"""Vectors on a coordinate grid with text labels (covers VectorArrow)."""

# ruff: noqa: F403, F405
from manim import *


class PlaneVectors(Scene):
    def construct(self):
        plane = NumberPlane(background_line_style={"stroke_opacity": 0.6})
        origin = Dot(ORIGIN, color=YELLOW)
        arrow = Arrow(ORIGIN, [3, 1, 0], buff=0, color=YELLOW)
        other = Vector([-2, 2], color=RED)
        drop = DashedLine([3, 1, 0], [3, 0, 0], color=GREY_B)
        origin_label = Text("O", font_size=30).next_to(origin, DR, buff=0.1)
        tip_label = Text("(3, 1)", font_size=30).next_to(arrow.get_end(), RIGHT)
        other_label = Text("(-2, 2)", font_size=30, color=RED).next_to(other.get_end(), LEFT)
        swoop = Line([-5, -2, 0], [-4, -2, 0], color=PINK)
        swoop.add_cubic_bezier_curve([-4, -2, 0], [-3, -3, 0], [-2, -1, 0], [-1, -2.5, 0])
        self.add(plane, drop, arrow, other, origin, origin_label, tip_label, other_label, swoop)
