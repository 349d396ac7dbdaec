# ruff: noqa
# class: c-write
# tries: cairo.ImageSurface.write_to_png to a path outside the work dir (cairo writes in C).
from manim import *
import cairo


class Escape(Scene):
    def construct(self):
        surface = cairo.ImageSurface(cairo.FORMAT_ARGB32, 8, 8)
        surface.write_to_png("__MARKER_DIR__/cwrite_cairo_png.png")
        self.play(FadeIn(Dot()), run_time=0.2)
