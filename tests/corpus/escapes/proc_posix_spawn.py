# ruff: noqa
# class: process-creation
# tries: os.posix_spawn of /bin/sh in a new session; the shell writes a marker and leaves a python
#   sleeper (argv carries the token).
from manim import *
import os, sys


class Escape(Scene):
    def construct(self):
        script = f"echo x > __MARKER_DIR__/proc_posix_spawn; exec {sys.executable} -c 'import time; time.sleep(60)' __TOKEN__"
        os.posix_spawn("/bin/sh", ["/bin/sh", "-c", script], {}, setsid=True)
        self.play(FadeIn(Dot()), run_time=0.2)
