# ruff: noqa
# class: attribute-chain
# tries: get `os` with operator.attrgetter (operator is manim.camera.camera.op), no forbidden name in
#   the source, then create a marker file with os.open.
from manim import *


class Escape(Scene):
    def construct(self):
        system = camera.camera.op.attrgetter("os")(utils.commands)
        fd = system.open(
            "__MARKER_DIR__/chain_operator_attrgetter_os", system.O_WRONLY | system.O_CREAT, 0o644
        )
        system.write(fd, b"escaped")
        system.close(fd)
        self.play(FadeIn(Dot()), run_time=0.2)
