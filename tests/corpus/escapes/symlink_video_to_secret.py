# ruff: noqa
# class: symlink
# tries: put a symlink where the movie will be written, pointing at the secret file: the render
#   overwrites the secret, or the runner takes the secret for the scene's video.
from manim import *
import os


class Escape(Scene):
    def construct(self):
        movie = self.renderer.file_writer.movie_file_path
        movie.parent.mkdir(parents=True, exist_ok=True)
        os.symlink("__SECRET_FILE__", movie)
        self.play(FadeIn(Dot()), run_time=0.2)
