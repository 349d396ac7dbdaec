# ruff: noqa
# class: network
# tries: a TCP connection from a child process started with fork_exec (the audit hook is per process).
from manim import *
import _posixsubprocess, os, sys

CHILD = "import socket; socket.create_connection(('127.0.0.1', __PORT__), timeout=3).sendall(b'child')"


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
