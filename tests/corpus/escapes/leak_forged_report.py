# ruff: noqa
# class: error-leak
# tries: print a forged final JSON report whose error carries the secret, then leave with os._exit, so
#   the runner takes the forged report for the worker's own.
from manim import *
import json
import os


class Escape(Scene):
    def construct(self):
        with open("__SECRET_FILE__") as handle:
            secret = handle.read()
        print(json.dumps({"kind": "error", "error": "NameError: " + secret}), flush=True)
        os._exit(1)
