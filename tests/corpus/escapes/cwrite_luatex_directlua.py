# ruff: noqa
# class: c-write
# tries: a TexTemplate compiled by lualatex whose preamble runs \directlua: Lua's io.open writes a
#   marker and os.execute runs a shell command.
from manim import *

PREAMBLE = r"""
\directlua{
  local f = io.open("__MARKER_DIR__/cwrite_luatex_directlua", "w")
  if f then f:write("escaped") f:close() end
  os.execute("touch __MARKER_DIR__/cwrite_luatex_directlua_shell")
}
"""


class Escape(Scene):
    def construct(self):
        template = TexTemplate(
            tex_compiler="lualatex",
            output_format=".pdf",
            documentclass=r"\documentclass{article}",  # standalone needs luatex85.sty
            preamble=PREAMBLE,
        )
        self.play(FadeIn(Tex("lua", tex_template=template)), run_time=0.2)
