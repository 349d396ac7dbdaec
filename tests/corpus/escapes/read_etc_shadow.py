# ruff: noqa
# class: read
# tries: print /etc/shadow (readable when the render runs as root) and /etc/passwd.
from manim import *


class Escape(Scene):
    def construct(self):
        for name in ("/etc/shadow", "/etc/passwd"):
            try:
                with open(name) as handle:
                    print(name, handle.read())
            except OSError as error:
                print(name, error)
        self.play(FadeIn(Dot()), run_time=0.2)
