"""Eviction of the shared `_cache/` in the job storage (renders, combined videos, speech) by age and size."""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from videojobs.storage import Storage, StoredObject

CACHE_ROOT = "_cache/"
"""Every shared cache lives below this prefix, next to the job folders ('_' never starts a job id)."""

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CacheEntry:
    """One cached thing: the objects `_cache/<kind>/<name>[.ext]` or `_cache/<kind>/<name>/…` (a folder)."""

    name: str
    keys: list[str]
    size: int
    modified: datetime


@dataclass(frozen=True)
class Eviction:
    """What one eviction pass found and removed."""

    entries: int
    bytes: int
    evicted: int
    evicted_bytes: int


def cache_entries(objects: list[StoredObject]) -> list[CacheEntry]:
    """The objects under CACHE_ROOT grouped into entries, oldest first (as new as their newest file)."""
    grouped: dict[str, list[StoredObject]] = defaultdict(list)
    for stored in objects:
        kind, _, rest = stored.key.removeprefix(CACHE_ROOT).partition("/")
        name = rest.split("/", 1)[0].split(".", 1)[0]  # a render's .mp4 and .json are one entry
        grouped[f"{CACHE_ROOT}{kind}/{name}"].append(stored)
    entries = [
        CacheEntry(
            name=name,
            keys=[stored.key for stored in members],
            size=sum(stored.size for stored in members),
            modified=max(stored.modified for stored in members),
        )
        for name, members in grouped.items()
    ]
    return sorted(entries, key=lambda entry: (entry.modified, entry.name))


def to_evict(
    entries: list[CacheEntry], max_bytes: int | None, max_age: timedelta | None, now: datetime
) -> list[CacheEntry]:
    """The entries older than `max_age`, then the oldest of the rest until they fit in `max_bytes`."""
    doomed = [entry for entry in entries if max_age is not None and now - entry.modified > max_age]
    kept = [entry for entry in entries if entry not in doomed]
    total = sum(entry.size for entry in kept)
    for entry in kept:  # oldest first
        if max_bytes is None or total <= max_bytes:
            break
        doomed.append(entry)
        total -= entry.size
    return doomed


def evict(storage: Storage, max_bytes: int | None, max_age: timedelta | None, now: datetime) -> Eviction:
    """Delete what `to_evict` picks from the storage's cache (a job that needs an entry makes it again)."""
    entries = cache_entries(storage.list_objects(CACHE_ROOT))
    doomed = to_evict(entries, max_bytes, max_age, now)
    storage.delete_keys([key for entry in doomed for key in entry.keys])
    eviction = Eviction(
        entries=len(entries),
        bytes=sum(entry.size for entry in entries),
        evicted=len(doomed),
        evicted_bytes=sum(entry.size for entry in doomed),
    )
    if doomed:
        log.info(
            "cache: evicted %d of %d entries (%d of %d bytes)",
            eviction.evicted,
            eviction.entries,
            eviction.evicted_bytes,
            eviction.bytes,
        )
    return eviction
