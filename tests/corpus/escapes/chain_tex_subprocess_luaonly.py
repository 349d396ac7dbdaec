# ruff: noqa
# class: attribute-chain
# tries: run an allowed TeX tool in an unsafe mode: `lualatex --luaonly script.lua` (no "shell-escape"
#   in its argv) through manim.utils.tex_file_writing.subprocess; the Lua script writes a marker
#   and runs a shell command.
from manim import *


class Escape(Scene):
    def construct(self):
        tools = utils.tex_file_writing
        script = tools.Path(config.media_dir) / "escape.lua"
        script.write_text(
            'local f = io.open("__MARKER_DIR__/chain_tex_subprocess_luaonly", "w")\n'
            'if f then f:write("escaped") f:close() end\n'
            'os.execute("touch __MARKER_DIR__/chain_tex_subprocess_luaonly_shell")\n'
        )
        tools.subprocess.run(["lualatex", "--luaonly", str(script)], timeout=30)
        self.play(FadeIn(Dot()), run_time=0.2)
