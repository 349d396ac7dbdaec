"""A memory cgroup capping a render's whole process tree, where the host lets the runner make one.

RLIMIT_AS bounds each process; only a cgroup bounds what a scene's processes use together. The runner
makes a child of its own memory cgroup (cgroup v1's memory controller, or v2 where `memory` is enabled
for its children), and the render's first process joins it before it starts anything else. Where no
cgroup can be made (an unprivileged runner without delegation) renders go on with the rlimits alone.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

PROC_CGROUP = Path("/proc/self/cgroup")
PROC_MOUNTINFO = Path("/proc/self/mountinfo")
REMOVE_ATTEMPTS = 20
REMOVE_PAUSE_SECONDS = 0.05


@dataclass(frozen=True)
class MemoryCgroup:
    """A cgroup of one render with a memory limit."""

    path: Path
    version: int

    @classmethod
    def create(cls, name: str, limit_bytes: int) -> MemoryCgroup | None:
        """A new cgroup `name` below this process's own, limited to `limit_bytes`; None where none can be."""
        for parent, version in _own_memory_cgroups():
            child = parent / name
            limit = child / ("memory.max" if version == 2 else "memory.limit_in_bytes")
            try:
                child.mkdir()
                limit.write_text(str(limit_bytes))
            except OSError:
                with contextlib.suppress(OSError):
                    child.rmdir()
                continue
            return cls(child, version)
        return None

    def enter(self) -> None:
        """Move the calling process (and so everything it starts) into the cgroup: a preexec step."""
        (self.path / "cgroup.procs").write_text(str(os.getpid()))

    def ran_out(self) -> bool:
        """Whether the kernel killed a process of the cgroup for going over its limit."""
        events = self.path / ("memory.events" if self.version == 2 else "memory.oom_control")
        try:
            fields = dict(line.split()[:2] for line in events.read_text().splitlines() if " " in line)
        except OSError:
            return False
        return int(fields.get("oom_kill", "0")) > 0

    def remove(self) -> None:
        """Delete the cgroup once its processes are gone (the kernel may need a moment to reap them)."""
        for _ in range(REMOVE_ATTEMPTS):
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(REMOVE_PAUSE_SECONDS)


def _own_memory_cgroups() -> list[tuple[Path, int]]:
    """This process's cgroup folders where a memory limit can be set: (folder, cgroup version)."""
    try:
        memberships = PROC_CGROUP.read_text().splitlines()
        mounts = PROC_MOUNTINFO.read_text().splitlines()
    except OSError:
        return []
    found: list[tuple[Path, int]] = []
    for membership in memberships:
        hierarchy, controllers, path = membership.split(":", 2)
        version = 2 if hierarchy == "0" and not controllers else 1
        if version == 1 and "memory" not in controllers.split(","):
            continue
        for mount in mounts:
            fields = mount.split()
            fstype, options = fields[fields.index("-") + 1], fields[-1].split(",")
            wanted = fstype == "cgroup2" if version == 2 else fstype == "cgroup" and "memory" in options
            if wanted and (path == fields[3] or path.startswith(fields[3].rstrip("/") + "/")):
                relative = os.path.relpath(path, fields[3])
                found.append((Path(fields[4], relative).resolve(), version))
    return found
