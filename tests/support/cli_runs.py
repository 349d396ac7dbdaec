"""Helpers to run the `videojobs` console script as a real subprocess and read what it stored."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

VIDEOJOBS = str(Path(sys.executable).parent / "videojobs")


def cli_env(**overrides: str) -> dict[str, str]:
    """The current environment (with the fake LLM's variables) plus test-friendly pipeline settings."""
    env = dict(os.environ)
    env.update({"DEFAULT_QUALITY": "low", "MAX_FIX_ATTEMPTS": "2", "COLUMNS": "200"})
    env.update(overrides)
    return env


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run `videojobs ARGS...` to completion."""
    return subprocess.run(
        [VIDEOJOBS, *args], env=env or cli_env(), capture_output=True, text=True, timeout=timeout, check=False
    )


def job_folders(out: Path) -> list[Path]:
    """Job folders under an output dir (those holding a job.json)."""
    return sorted(p.parent for p in out.glob("*/job.json"))


def read_json(path: Path) -> Any:
    """Parse a JSON file."""
    return json.loads(path.read_text())


def ffprobe(path: Path) -> dict[str, Any]:
    """ffprobe's streams and format of a media file."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-print_format", "json", "-show_streams", "-show_format", str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return dict(json.loads(out))


def parse_srt(text: str) -> list[tuple[float, float, str]]:
    """SubRip cues as (start, end, text), parsed independently of the code under test."""

    def seconds(stamp: str) -> float:
        h, m, rest = stamp.split(":")
        s, ms = rest.split(",")
        return int(h) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000

    cues = []
    for block in text.strip().split("\n\n"):
        lines = block.splitlines()
        start, end = lines[1].split(" --> ")
        cues.append((seconds(start), seconds(end), " ".join(lines[2:])))
    return cues


@dataclass
class Served:
    """A started `videojobs serve`: its URL and what it printed before it listened."""

    url: str
    lines: list[str]

    def after(self, prefix: str) -> str:
        """The line after the first that starts with `prefix`, unindented."""
        index = next(i for i, line in enumerate(self.lines) if line.startswith(prefix))
        return self.lines[index + 1].strip()


def free_port() -> int:
    """A 127.0.0.1 port free at the time of asking."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def serve(env: dict[str, str], log: Path) -> Iterator[Served]:
    """`videojobs serve` on 127.0.0.1 and a free port, ready; terminated (by its pid) at the end.

    Its output goes to `log` (a pipe nobody reads would fill, and stall the server).
    """
    port = free_port()
    with log.open("w") as output:
        server = subprocess.Popen(
            [VIDEOJOBS, "serve", "--port", str(port)], env=env, stdout=output, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 60
        while "Uvicorn running on" not in (printed := log.read_text()):
            assert server.poll() is None, printed  # it stopped before listening
            assert time.monotonic() < deadline, printed
            time.sleep(0.05)
        lines = printed.splitlines()
        lines = lines[: next(i for i, line in enumerate(lines) if "Uvicorn running on" in line) + 1]
        url = f"http://127.0.0.1:{port}"
        while httpx.get(f"{url}/readyz").status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        yield Served(url, lines)
    finally:
        server.terminate()
        server.wait(timeout=30)
