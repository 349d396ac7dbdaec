# ruff: noqa
# class: read
# tries: copy the secret file into the media dir (where the runner's artifacts come from).
from manim import *
import os
import shutil


class Escape(Scene):
    def construct(self):
        shutil.copyfile("__SECRET_FILE__", os.path.join(config.media_dir, "loot.txt"))
        self.play(FadeIn(Dot()), run_time=0.2)
