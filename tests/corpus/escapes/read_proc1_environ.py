# ruff: noqa
# class: read
# tries: read /proc/1/environ and /proc/1/cmdline (the host's or the pod's init) into the log.
from manim import *


class Escape(Scene):
    def construct(self):
        for name in ("environ", "cmdline"):
            try:
                with open(f"/proc/1/{name}", "rb") as handle:
                    print(name, handle.read().replace(b"\0", b"\n").decode(errors="replace"))
            except OSError as error:
                print(name, error)
        self.play(FadeIn(Dot()), run_time=0.2)
