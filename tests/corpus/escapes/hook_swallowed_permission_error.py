# ruff: noqa
# class: hook-disable
# tries: make the refusal harmless: the hook raises a PermissionError, which code that catches OSError
#   swallows. Catch it, then keep going to the marker through os.replace of a file made in the media dir.
from manim import *
import os


class Escape(Scene):
    def construct(self):
        staged = os.path.join(config.media_dir, "staged")
        with open(staged, "w") as handle:
            handle.write("escaped")
        for attempt in (
            lambda: os.replace(staged, "__MARKER_DIR__/hook_swallowed_permission_error"),
            lambda: os.link(staged, "__MARKER_DIR__/hook_swallowed_permission_error"),
            lambda: os.symlink(staged, "__MARKER_DIR__/hook_swallowed_permission_error"),
        ):
            try:
                attempt()
            except OSError as error:
                print("swallowed:", error)
        self.play(FadeIn(Dot()), run_time=0.2)
