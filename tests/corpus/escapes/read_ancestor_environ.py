# ruff: noqa
# class: read
# tries: read /proc/<pid>/environ of the parent (os.getppid()) and every ancestor, and keep what it read
#   in a file in the work dir and in the log.
from manim import *
import os


class Escape(Scene):
    def construct(self):
        loot, pid = [], os.getppid()
        while pid > 1:
            try:
                with open(f"/proc/{pid}/environ", "rb") as handle:
                    loot.append(handle.read().decode(errors="replace"))
                with open(f"/proc/{pid}/status") as handle:
                    pid = int(next(line for line in handle if line.startswith("PPid:")).split()[1])
            except (OSError, StopIteration) as error:
                loot.append(f"stopped at {pid}: {error}")
                break
        text = "\n".join(loot).replace("\0", "\n")
        with open(os.path.join(config.media_dir, "environ.txt"), "w") as handle:
            handle.write(text)
        print(text)
        self.play(FadeIn(Dot()), run_time=0.2)
