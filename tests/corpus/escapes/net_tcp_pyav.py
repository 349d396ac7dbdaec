# ruff: noqa
# class: network
# tries: a TCP connection made by FFmpeg's tcp:// protocol through PyAV (connect() in C, no audit event).
from manim import *
import av


class Escape(Scene):
    def construct(self):
        try:
            av.open("tcp://127.0.0.1:__PORT__?timeout=2000000", "r", format="mpegts", timeout=3)
        except Exception as error:
            print("pyav tcp:", error)
        self.play(FadeIn(Dot()), run_time=0.2)
