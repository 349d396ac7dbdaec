# ruff: noqa
# class: attribute-chain
# tries: reach `builtins` through np._core.numeric (a dotted attrgetter path) and open() a marker.
from manim import *


class Escape(Scene):
    def construct(self):
        real_builtins = camera.camera.op.attrgetter("_core.numeric.builtins")(np)
        with real_builtins.open("__MARKER_DIR__/chain_numpy_builtins_open", "w") as handle:
            handle.write("escaped")
        self.play(FadeIn(Dot()), run_time=0.2)
