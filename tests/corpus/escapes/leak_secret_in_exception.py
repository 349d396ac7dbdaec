# ruff: noqa
# class: error-leak
# tries: read the secret file and raise an exception carrying it (into the log, the job status and the
#   fix prompt).
from manim import *


class Escape(Scene):
    def construct(self):
        self.play(FadeIn(Dot()), run_time=0.2)
        listing = Code(code_file="__SECRET_FILE__", language="text")
        raise ValueError("unexpected content: " + listing._code_html.get_text())
