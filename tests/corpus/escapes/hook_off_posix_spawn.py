# ruff: noqa
# class: process-creation
# tries: switch the audit hook off, then posix_spawn a shell in a new session that writes a marker and
#   leaves a python sleeper (argv carries the token) behind.
from manim import *
import os, sys


class Escape(Scene):
    def construct(self):
        sys.modules["__main__"].refusal = lambda *args: ""
        script = f"echo x > __MARKER_DIR__/hook_off_posix_spawn; exec {sys.executable} -c 'import time; time.sleep(60)' __TOKEN__"
        os.posix_spawn("/bin/sh", ["/bin/sh", "-c", script], {}, setsid=True)
        self.play(FadeIn(Dot()), run_time=0.2)
