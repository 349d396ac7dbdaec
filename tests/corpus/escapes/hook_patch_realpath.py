# ruff: noqa
# class: hook-disable
# tries: monkeypatch os.path.realpath (which the hook trusts) so every path seems to lie in the media
#   dir, write a marker, and put realpath back.
from manim import *
import os


class Escape(Scene):
    def construct(self):
        original, inside = os.path.realpath, os.path.realpath(config.media_dir)
        os.path.realpath = lambda path, *args, **kwargs: inside
        try:
            with open("__MARKER_DIR__/hook_patch_realpath", "w") as handle:
                handle.write("escaped")
        finally:
            os.path.realpath = original
        self.play(FadeIn(Dot()), run_time=0.2)
