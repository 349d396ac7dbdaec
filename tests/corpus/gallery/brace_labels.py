"""Braces measuring a slanted segment and a box (covers BraceAnnotation)."""

# ruff: noqa: F403, F405
from manim import *


class BraceMeasurements(Scene):
    def construct(self):
        start = Dot([-4, -1.5, 0], color=BLUE)
        end = Dot([0, 0.5, 0], color=BLUE)
        segment = Line(start.get_center(), end.get_center()).set_color(TEAL)
        below = Brace(segment, direction=DOWN)
        below_text = below.get_text("run")
        outward = segment.copy().rotate(PI / 2).get_unit_vector()
        beside = Brace(segment, direction=outward)
        beside_tex = beside.get_tex(r"\sqrt{\Delta x^2 + \Delta y^2}")
        box = Rectangle(width=2.4, height=1.4, color=YELLOW).move_to([3.5, 0.5, 0])
        height_label = BraceLabel(box, "h", brace_direction=RIGHT)
        width_label = BraceLabel(box, "width", brace_direction=UP, label_constructor=Text, font_size=28)
        gap = BraceBetweenPoints([2.3, -1.5, 0], [4.7, -1.5, 0], direction=DOWN, color=GREY)
        self.add(segment, start, end, below, below_text, beside, beside_tex)
        self.add(box, height_label, width_label, gap)
