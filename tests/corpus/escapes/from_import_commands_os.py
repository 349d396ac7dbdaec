# ruff: noqa
# class: private-alias
# tries: `from manim.utils.commands import os as o` (a dangerous name imported from an allowed module
#   under another name) and posix_spawn a python sleeper (argv carries the token) in a new session.
from manim import *
from manim.utils.commands import os as o
from manim.utils.module_ops import sys as s


class Escape(Scene):
    def construct(self):
        child = "open('__MARKER_DIR__/from_import_commands_os', 'w').write('x'); import time; time.sleep(60)"
        o.posix_spawn(s.executable, [s.executable, "-c", child, "__TOKEN__"], {}, setsid=True)
        self.play(FadeIn(Dot()), run_time=0.2)
