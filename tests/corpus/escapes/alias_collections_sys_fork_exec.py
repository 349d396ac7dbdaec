# ruff: noqa
# class: private-alias
# tries: `from collections import _sys` then sys.modules["_posixsubprocess"].fork_exec: a new session
#   running python (argv carries the token) that writes a marker and outlives the render.
from manim import *
from collections import _sys as interpreter


class Escape(Scene):
    def construct(self):
        posix = interpreter.modules["posix"]
        spawn = interpreter.modules["_posixsubprocess"].fork_exec
        python = interpreter.executable
        child = "open('__MARKER_DIR__/alias_collections_sys_fork_exec', 'w').write('x'); import time; time.sleep(60)"
        read_end, write_end = posix.pipe()
        spawn(
            [python, "-c", child, "__TOKEN__"],
            [python.encode()],
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
        posix.close(write_end)
        posix.read(read_end, 100)
        self.play(FadeIn(Dot()), run_time=0.2)
