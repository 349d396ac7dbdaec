# ruff: noqa
# class: c-write
# tries: switch the audit hook off (the worker's `refusal` global), then compile a lualatex TexTemplate
#   whose \directlua writes a marker with io.open and runs a shell with os.execute.
from manim import *
import sys

PREAMBLE = r"""
\directlua{
  local f = io.open("__MARKER_DIR__/hook_off_lualatex_directlua", "w")
  if f then f:write("escaped") f:close() end
  os.execute("touch __MARKER_DIR__/hook_off_lualatex_directlua_shell")
}
"""


class Escape(Scene):
    def construct(self):
        sys.modules["__main__"].refusal = lambda *args: ""
        template = TexTemplate(
            tex_compiler="lualatex",
            output_format=".pdf",
            documentclass=r"\documentclass{article}",
            preamble=PREAMBLE,
        )
        self.play(FadeIn(Tex("lua", tex_template=template)), run_time=0.2)
