# ruff: noqa
# class: read
# tries: \input{...} of the secret file in a Tex (text mode: its "_" makes LaTeX stop with the secret's
#   line in the error context and the compiler log).
from manim import *


class Escape(Scene):
    def construct(self):
        self.play(FadeIn(Tex(r"\input{__SECRET_FILE__}")), run_time=0.2)
