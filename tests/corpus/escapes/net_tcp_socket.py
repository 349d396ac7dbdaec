# ruff: noqa
# class: network
# tries: a TCP connection to the test's listener on 127.0.0.1 with a plain socket.
from manim import *
import socket


class Escape(Scene):
    def construct(self):
        with socket.create_connection(("127.0.0.1", __PORT__), timeout=3) as connection:
            connection.sendall(b"plain socket")
        self.play(FadeIn(Dot()), run_time=0.2)
