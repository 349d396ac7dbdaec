# ruff: noqa
# class: symlink
# tries: replace the dir of the partial movie clips with a symlink to an outside dir, and make the
#   movie's dir one too, so Manim's own writes land outside.
from manim import *
import os


class Escape(Scene):
    def construct(self):
        writer = self.renderer.file_writer
        for folder in (writer.partial_movie_directory, writer.movie_file_path.parent):
            if folder.exists() or folder.is_symlink():
                folder.rename(folder.with_name(folder.name + ".moved"))
            folder.parent.mkdir(parents=True, exist_ok=True)
            os.symlink("__MARKER_DIR__", folder)
        self.play(FadeIn(Dot()), run_time=0.2)
