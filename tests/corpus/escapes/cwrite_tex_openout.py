# ruff: noqa
# class: c-write
# tries: TeX's \openout/\write to an absolute path outside the work dir, and to one reached with ../.
from manim import *

BODY = r"""
\immediate\openout15=__MARKER_DIR__/cwrite_tex_openout.tex
\immediate\write15{escaped}
\immediate\closeout15
\immediate\openout14=../../../../../../../../../../..__MARKER_DIR__/cwrite_tex_openout_relative.tex
\immediate\write14{escaped}
\immediate\closeout14
written
"""


class Escape(Scene):
    def construct(self):
        self.play(FadeIn(Tex(BODY)), run_time=0.2)
