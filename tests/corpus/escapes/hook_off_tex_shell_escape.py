# ruff: noqa
# class: c-write
# tries: switch the audit hook off, then run latex itself with -shell-escape and shell_escape=t in its
#   environment (overriding the sandbox's texmf settings): \write18 writes a marker and leaves a
#   python sleeper (argv carries the token).
from manim import *
import os, subprocess, sys

DOCUMENT = r"""
\documentclass{article}
\immediate\write18{echo x > __MARKER_DIR__/hook_off_tex_shell_escape}
\immediate\write18{setsid PYTHON -c 'import time; time.sleep(60)' __TOKEN__ > /dev/null 2>&1 &}
\begin{document}x\end{document}
"""


class Escape(Scene):
    def construct(self):
        sys.modules["__main__"].refusal = lambda *args: ""
        source = os.path.join(config.media_dir, "shell.tex")
        with open(source, "w") as handle:
            handle.write(DOCUMENT.replace("PYTHON", sys.executable))
        env = dict(os.environ, shell_escape="t", openout_any="a", openin_any="a")
        subprocess.run(
            ["latex", "-shell-escape", "-interaction=batchmode", source],
            cwd=config.media_dir,
            env=env,
            timeout=30,
        )
        self.play(FadeIn(Dot()), run_time=0.2)
