# ruff: noqa
# class: symlink
# tries: make the dir of the partial movie clips a symlink to an outside dir, so Manim's own writes
#   (its mkdir(exist_ok=True) swallows a refusal as the dir "exists") land outside.
from manim import *
import os


class Escape(Scene):
    def construct(self):
        folder = self.renderer.file_writer.partial_movie_directory
        if folder.exists() or folder.is_symlink():
            folder.rename(folder.with_name(folder.name + ".moved"))
        folder.parent.mkdir(parents=True, exist_ok=True)
        os.symlink("__MARKER_DIR__", folder)
        self.play(FadeIn(Dot()), run_time=0.2)
