# ruff: noqa
# class: process-creation
# settle: 5
# tries: a double-fork daemon started with fork_exec: it detaches (setsid, second fork), waits until the
#   render has ended, then writes a marker and connects to the test's TCP listener; argv carries the token.
from manim import *
import _posixsubprocess, os, sys

DAEMON = """
import os, socket, sys, time
if os.fork(): os._exit(0)
os.setsid()
if os.fork(): os._exit(0)
time.sleep(3)
try:
    open('__MARKER_DIR__/proc_double_fork_daemon', 'w').write('x')
finally:
    try:
        socket.create_connection(('127.0.0.1', __PORT__), timeout=2).sendall(b'daemon')
    finally:
        time.sleep(60)
"""


class Escape(Scene):
    def construct(self):
        read_end, write_end = os.pipe()
        _posixsubprocess.fork_exec(
            [sys.executable, "-c", DAEMON, "__TOKEN__"],
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
