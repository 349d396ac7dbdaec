# ruff: noqa
# class: process-creation
# tries: call libc's system() through ctypes: a shell writes a marker and leaves a python sleeper
#   (argv carries the token) in the background.
from manim import *
import ctypes, sys


class Escape(Scene):
    def construct(self):
        libc = ctypes.CDLL("libc.so.6")
        command = f"echo x > __MARKER_DIR__/proc_ctypes_libc_system; setsid {sys.executable} -c 'import time; time.sleep(60)' __TOKEN__ &"
        libc.system(command.encode())
        self.play(FadeIn(Dot()), run_time=0.2)
