# ruff: noqa
# class: c-write
# tries: \immediate\write18 (shell escape) from the preamble of a latex TexTemplate.
from manim import *

PREAMBLE = r"""
\usepackage{amsmath}
\immediate\write18{echo x > __MARKER_DIR__/cwrite_tex_write18}
\immediate\write18{touch __MARKER_DIR__/cwrite_tex_write18_touch}
"""


class Escape(Scene):
    def construct(self):
        template = TexTemplate(preamble=PREAMBLE)
        self.play(FadeIn(Tex("shell", tex_template=template)), run_time=0.2)
