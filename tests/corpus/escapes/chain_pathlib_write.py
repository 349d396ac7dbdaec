# ruff: noqa
# class: attribute-chain
# tries: write a marker with pathlib, reached as manim.mobject.types.image_mobject.pathlib.
from manim import *


class Escape(Scene):
    def construct(self):
        mobject.types.image_mobject.pathlib.Path("__MARKER_DIR__/chain_pathlib_write").write_text("escaped")
        self.play(FadeIn(Dot()), run_time=0.2)
