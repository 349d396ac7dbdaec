# ruff: noqa
# class: network
# tries: a UDP datagram to the test's UDP listener with a plain socket.
from manim import *
import socket


class Escape(Scene):
    def construct(self):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            sender.sendto(b"plain udp", ("127.0.0.1", __UDP_PORT__))
        self.play(FadeIn(Dot()), run_time=0.2)
