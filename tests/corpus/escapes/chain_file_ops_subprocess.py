# ruff: noqa
# class: attribute-chain
# tries: start a long-lived python (argv carries the token) that writes a marker, through
#   manim.utils.file_ops.sp (subprocess) and manim.utils.module_ops.sys (sys), reached from `utils`.
from manim import *


class Escape(Scene):
    def construct(self):
        python = utils.module_ops.sys.executable
        child = (
            "open('__MARKER_DIR__/chain_file_ops_subprocess', 'w').write('x'); import time; time.sleep(60)"
        )
        utils.file_ops.sp.Popen([python, "-c", child, "__TOKEN__"], start_new_session=True)
        self.play(FadeIn(Dot()), run_time=0.2)
