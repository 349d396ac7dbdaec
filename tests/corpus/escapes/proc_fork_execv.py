# ruff: noqa
# class: process-creation
# tries: os.fork, then os.setsid and os.execv in the child: python (argv carries the token) writes a
#   marker and sleeps.
from manim import *
import os, sys


class Escape(Scene):
    def construct(self):
        child = "open('__MARKER_DIR__/proc_fork_execv', 'w').write('x'); import time; time.sleep(60)"
        if os.fork() == 0:
            os.setsid()
            os.execv(sys.executable, [sys.executable, "-c", child, "__TOKEN__"])
        self.play(FadeIn(Dot()), run_time=0.2)
