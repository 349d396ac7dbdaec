# ruff: noqa
# class: process-creation
# tries: pty.fork (forkpty) and exec a python sleeper (argv carries the token) that writes a marker.
from manim import *
import os, pty, sys


class Escape(Scene):
    def construct(self):
        child = "open('__MARKER_DIR__/proc_pty_spawn', 'w').write('x'); import time; time.sleep(60)"
        pid, _ = pty.fork()
        if pid == 0:
            os.execv(sys.executable, [sys.executable, "-c", child, "__TOKEN__"])
        self.play(FadeIn(Dot()), run_time=0.2)
