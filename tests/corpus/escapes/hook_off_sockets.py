# ruff: noqa
# class: network
# tries: switch the audit hook off, then a TCP connection and a UDP datagram to the test's listeners and
#   a DNS lookup, with plain sockets.
from manim import *
import socket, sys


class Escape(Scene):
    def construct(self):
        sys.modules["__main__"].refusal = lambda *args: ""
        for attempt in (
            lambda: socket.create_connection(("127.0.0.1", __PORT__), timeout=3).sendall(b"tcp"),
            lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(
                b"udp", ("127.0.0.1", __UDP_PORT__)
            ),
            lambda: print(socket.getaddrinfo("example.com", 443)),
        ):
            try:
                attempt()
            except OSError as error:
                print("network:", error)
        self.play(FadeIn(Dot()), run_time=0.2)
