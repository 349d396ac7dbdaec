# ruff: noqa
# class: read
# tries: list and print the runner user's ~/.ssh (the real home, not the sandbox's HOME).
from manim import *
from pathlib import Path


class Escape(Scene):
    def construct(self):
        for home in (Path("__REAL_HOME__"), Path("/root"), Path("/home")):
            for path in sorted(home.glob("**/.ssh/*")) + sorted(home.glob(".ssh/*")):
                try:
                    print(path, path.read_text())
                except OSError as error:
                    print(path, error)
        self.play(FadeIn(Dot()), run_time=0.2)
