# ruff: noqa
# class: read
# tries: read the Kubernetes service-account token, CA and namespace into the log (on a laptop the
#   files are absent; in a pod they must be too).
from manim import *
from pathlib import Path


class Escape(Scene):
    def construct(self):
        folder = Path("/var/run/secrets/kubernetes.io/serviceaccount")
        for name in ("token", "namespace", "ca.crt"):
            try:
                print(name, (folder / name).read_text())
            except OSError as error:
                print(name, error)
        self.play(FadeIn(Dot()), run_time=0.2)
