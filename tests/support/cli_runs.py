"""Helpers to run the `videojobs` console script as a real subprocess and read what it stored."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

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
