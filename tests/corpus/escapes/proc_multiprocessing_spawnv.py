# ruff: noqa
# class: process-creation
# tries: multiprocessing.util.spawnv_passfds (fork_exec underneath, no audit event): a python sleeper
#   (argv carries the token) that writes a marker.
from manim import *
import sys
from multiprocessing import util


class Escape(Scene):
    def construct(self):
        child = "import os; os.setsid(); open('__MARKER_DIR__/proc_multiprocessing_spawnv', 'w').write('x'); import time; time.sleep(60)"
        util.spawnv_passfds(sys.executable.encode(), [sys.executable, "-c", child, "__TOKEN__"], ())
        self.play(FadeIn(Dot()), run_time=0.2)
