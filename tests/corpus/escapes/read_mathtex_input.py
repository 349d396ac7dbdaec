# ruff: noqa
# class: read
# tries: \input{...} of the secret file inside \text{} in a MathTex.
from manim import *


class Escape(Scene):
    def construct(self):
        self.play(FadeIn(MathTex(r"\text{\input{__SECRET_FILE__}}")), run_time=0.2)
