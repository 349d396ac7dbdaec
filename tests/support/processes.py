"""Finding processes by a token in their command line: detection only, never for killing."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

LEFTOVER_WAIT_SECONDS = 3.0


def processes_with(token: str) -> list[str]:
    """'pid: cmdline' of every live process whose command line contains `token`."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(OSError):
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                if token in cmdline:
                    found.append(f"{proc.name}: {cmdline.strip()}")
    return found


def wait_for_no_process_with(token: str, seconds: float = LEFTOVER_WAIT_SECONDS) -> list[str]:
    """The processes still carrying `token` after up to `seconds` (time for killed ones to be reaped)."""
    deadline = time.monotonic() + seconds
    while (left := processes_with(token)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left
