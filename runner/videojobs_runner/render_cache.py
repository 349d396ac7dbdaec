"""Shared render cache: scene videos in the job storage under `_cache/renders/`, keyed by what made them."""

from __future__ import annotations

import hashlib
import json
from importlib.metadata import version
from pathlib import Path

from pydantic import BaseModel, ValidationError

from videojobs.contract import QUALITY_PRESETS, Quality
from videojobs_runner.layout import LayoutViolation
from videojobs_runner.storage import Storage

CACHE_PREFIX = "_cache/renders/"
"""Next to the job folders; '_' can never start a job id (DNS-1123), so no job can collide with it."""
KEY_VERSION = 1
"""Bumped when what a cached entry holds changes, so old entries are never misread."""


class CachedRender(BaseModel):
    """What a render produced besides its video; stored after the video, so it marks the entry whole."""

    scene_class: str
    duration_seconds: float
    layout_violations: list[LayoutViolation] = []


def render_key(
    code: str, quality: Quality, *, audio_digest: str | None = None, layout_margin: float = 0.0
) -> str:
    """The cache key of a scene render: a SHA-256 of its code, picture settings, Manim and narration audio.

    The layout margin is part of the key because a cached entry carries its layout check's result.
    """
    preset = QUALITY_PRESETS[quality]
    material = {
        "key_version": KEY_VERSION,
        "code": code,
        "resolution": [preset.width, preset.height, preset.fps],
        "manim": version("manim"),
        "audio": audio_digest,
        "layout_margin": layout_margin,
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()


class RenderCache:
    """Scene renders shared by every job in one storage backend (a local folder or an S3 bucket)."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    def fetch(self, key: str, dest: Path) -> CachedRender | None:
        """Copy a cached render's video to `dest` and return its record; None on a miss."""
        data = self.storage.get_bytes(f"{CACHE_PREFIX}{key}.json")
        if data is None:
            return None
        try:
            record = CachedRender.model_validate_json(data)
        except ValidationError:
            return None  # an entry from an incompatible version: render again and overwrite it
        return record if self.storage.download(f"{CACHE_PREFIX}{key}.mp4", dest) else None

    def store(self, key: str, video: Path, record: CachedRender) -> None:
        """Add a render to the cache: the video first, then its record."""
        self.storage.put_file(f"{CACHE_PREFIX}{key}.mp4", video, "video/mp4")
        self.storage.put_bytes(
            f"{CACHE_PREFIX}{key}.json", record.model_dump_json().encode(), "application/json"
        )
