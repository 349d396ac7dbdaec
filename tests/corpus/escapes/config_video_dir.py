# ruff: noqa
# class: config-redirect
# tries: set config.video_dir (and partial_movie_dir) to an outside dir at import time.
from manim import *

config.video_dir = "__MARKER_DIR__"
config.partial_movie_dir = "__MARKER_DIR__"


class Escape(Scene):
    def construct(self):
        self.play(FadeIn(Dot()), run_time=0.2)
