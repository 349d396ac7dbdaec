# ruff: noqa
# class: read
# tries: Code(code_file=...) of the secret file, then print the text Manim read.
from manim import *


class Escape(Scene):
    def construct(self):
        listing = Code(code_file="__SECRET_FILE__", language="text")
        print("code:", listing._code_html.get_text())
        self.play(FadeIn(listing), run_time=0.2)
