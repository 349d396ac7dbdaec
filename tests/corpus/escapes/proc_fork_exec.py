# ruff: noqa
# class: process-creation
# tries: _posixsubprocess.fork_exec (raises no audit event) in a new session: python whose argv carries
#   the token writes a marker and sleeps past the end of the render.
from manim import *
import _posixsubprocess, os, sys


class Escape(Scene):
    def construct(self):
        child = "open('__MARKER_DIR__/proc_fork_exec', 'w').write('x'); import time; time.sleep(60)"
        read_end, write_end = os.pipe()
        _posixsubprocess.fork_exec(
            [sys.executable, "-c", child, "__TOKEN__"],
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
            True,
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
        self.play(FadeIn(Dot()), run_time=0.2)
