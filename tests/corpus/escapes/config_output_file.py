# ruff: noqa
# class: config-redirect
# tries: set config.output_file to an absolute path outside the work dir at import time (the worker's
#   tempconfig does not override it), so Manim writes the final movie there.
from manim import *

config.output_file = "__MARKER_DIR__/config_output_file"


class Escape(Scene):
    def construct(self):
        self.play(FadeIn(Dot()), run_time=0.2)
