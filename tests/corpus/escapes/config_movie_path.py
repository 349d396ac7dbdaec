# ruff: noqa
# class: config-redirect
# tries: point the file writer's planned movie path at an existing outside dir (no mkdir needed), so
#   the final combine (PyAV, in C) writes there.
from manim import *
import dataclasses
from pathlib import Path


class Escape(Scene):
    def construct(self):
        writer = self.renderer.file_writer
        writer.output_plan = dataclasses.replace(
            writer.output_plan, primary_artifact=Path("__MARKER_DIR__/config_movie_path.mp4")
        )
        self.play(FadeIn(Dot()), run_time=0.2)
