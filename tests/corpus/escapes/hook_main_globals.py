# ruff: noqa
# class: hook-disable
# tries: replace the worker's own globals through sys.modules["__main__"] (the audit hook looks up
#   `refusal` there on every event), then open() a marker outside the work dir.
from manim import *
import sys


class Escape(Scene):
    def construct(self):
        worker = sys.modules["__main__"]
        worker.refusal = lambda *args: ""
        with open("__MARKER_DIR__/hook_main_globals", "w") as handle:
            handle.write("escaped")
        self.play(FadeIn(Dot()), run_time=0.2)
