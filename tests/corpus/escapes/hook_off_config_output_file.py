# ruff: noqa
# class: config-redirect
# tries: switch the audit hook off, then point config.output_file and the planned movie at the marker
#   dir (creating it if it is missing), so Manim writes the movie there.
from manim import *
import dataclasses, os, sys
from pathlib import Path


class Escape(Scene):
    def construct(self):
        sys.modules["__main__"].refusal = lambda *args: ""
        os.makedirs("__MARKER_DIR__", exist_ok=True)
        config.output_file = "__MARKER_DIR__/hook_off_config_output_file"
        writer = self.renderer.file_writer
        writer.output_plan = dataclasses.replace(
            writer.output_plan, primary_artifact=Path("__MARKER_DIR__/hook_off_config_output_file.mp4")
        )
        self.play(FadeIn(Dot()), run_time=0.2)
