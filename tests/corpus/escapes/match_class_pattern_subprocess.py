# ruff: noqa
# class: match-pattern
# tries: capture subprocess and sys with class-pattern keyword attributes (no attribute node in the
#   source), then start a python sleeper (argv carries the token) that writes a marker.
from manim import *


class Escape(Scene):
    def construct(self):
        match utils:
            case object(file_ops=object(sp=proc), module_ops=object(sys=interp)):
                child = "open('__MARKER_DIR__/match_class_pattern_subprocess', 'w').write('x'); import time; time.sleep(60)"
                proc.Popen([interp.executable, "-c", child, "__TOKEN__"], start_new_session=True)
        self.play(FadeIn(Dot()), run_time=0.2)
