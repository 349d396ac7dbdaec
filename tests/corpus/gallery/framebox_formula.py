"""Boxes that jump between the terms of a formula, then terms that swap (covers MovingFrameBox)."""

# ruff: noqa: F403, F405
from manim import *


class HighlightTerms(Scene):
    def construct(self):
        identity = MathTex(r"(a+b)^2", "=", "a^2", "+", "2ab", "+", "b^2")
        identity.set_color_by_tex("2ab", YELLOW)
        self.play(Write(identity), run_time=0.8)
        first = SurroundingRectangle(identity[2], buff=0.1, color=BLUE)
        second = SurroundingRectangle(identity[4], buff=0.1, color=BLUE)
        self.play(Create(first), run_time=0.4)
        self.wait(0.2)
        self.play(ReplacementTransform(first, second), run_time=0.4)
        reordered = MathTex(r"(a+b)^2", "=", "a^2", "+", "b^2", "+", "2ab")
        reordered.set_color_by_tex("2ab", YELLOW)
        self.play(FadeOut(second), TransformMatchingTex(identity, reordered), run_time=0.6)
        self.wait(0.3)
