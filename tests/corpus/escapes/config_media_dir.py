# ruff: noqa
# class: config-redirect
# tries: set config.media_dir to an outside dir inside construct() and re-plan the scene's outputs
#   with Manim's own planner, so the clips and movie land outside the work dir.
from manim import *
from pathlib import Path
from manim._config.output_plan import resolve_media_layout, resolve_module_name, resolve_output_plan


class Escape(Scene):
    def construct(self):
        config.media_dir = "__MARKER_DIR__"
        output = self.session_spec.output
        layout = resolve_media_layout(
            config,
            output,
            module_name=resolve_module_name(config),
            scene_name="Escape",
            working_directory=Path.cwd(),
        )
        self.renderer.file_writer.output_plan = resolve_output_plan(
            layout, output, scene_name="Escape", requested_output_name=None
        )
        self.play(FadeIn(Dot()), run_time=0.2)
