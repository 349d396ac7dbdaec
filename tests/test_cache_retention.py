"""Eviction of the shared _cache/ by age and size, on local and S3 storage; evicted speech is spoken again."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from s3_server import S3Server

from videojobs.cache_retention import CACHE_ROOT, CacheEntry, cache_entries, evict, to_evict
from videojobs.contract import Stage, VoiceSpec
from videojobs.storage import LocalStorage, S3Storage, Storage, StoredObject
from videojobs_runner.llm import LLMClient, UsageLedger
from videojobs_runner.tts import Narrator

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def entry(name: str, size: int, age: timedelta) -> CacheEntry:
    return CacheEntry(name, [name], size, NOW - age)


def test_old_entries_go_then_the_oldest_until_the_rest_fits() -> None:
    entries = [
        entry("a", 10, 40 * DAY),
        entry("b", 50, 3 * DAY),
        entry("c", 30, 2 * DAY),
        entry("d", 20, DAY),
    ]
    assert [e.name for e in to_evict(entries, None, 30 * DAY, NOW)] == ["a"]
    assert [e.name for e in to_evict(entries, 60, 30 * DAY, NOW)] == ["a", "b"]
    assert [e.name for e in to_evict(entries, 10, None, NOW)] == ["a", "b", "c", "d"]
    assert to_evict(entries, None, None, NOW) == []
    assert to_evict(entries, 110, None, NOW) == []


def test_a_renders_video_and_record_are_one_entry_and_folders_are_one_entry() -> None:
    objects = [
        StoredObject(f"{CACHE_ROOT}renders/abc.mp4", 100, NOW - DAY),
        StoredObject(f"{CACHE_ROOT}renders/abc.json", 1, NOW),
        StoredObject(f"{CACHE_ROOT}combined/k1/video.mp4", 500, NOW - 2 * DAY),
        StoredObject(f"{CACHE_ROOT}combined/k1/combined.json", 2, NOW - 2 * DAY),
        StoredObject(f"{CACHE_ROOT}tts/d1.wav", 7, NOW - 3 * DAY),
    ]
    entries = cache_entries(objects)
    assert [(e.name, e.size, e.modified) for e in entries] == [
        (f"{CACHE_ROOT}tts/d1", 7, NOW - 3 * DAY),
        (f"{CACHE_ROOT}combined/k1", 502, NOW - 2 * DAY),
        (f"{CACHE_ROOT}renders/abc", 101, NOW),
    ]


def fill(storage: Storage) -> None:
    storage.put_bytes(f"{CACHE_ROOT}renders/old.mp4", b"x" * 300)
    storage.put_bytes(f"{CACHE_ROOT}renders/old.json", b"{}")
    storage.put_bytes(f"{CACHE_ROOT}tts/new.wav", b"y" * 100)
    storage.put_bytes("job-1/video.mp4", b"z" * 1000)  # a job's own artifacts are never the cache's


def test_local_eviction_by_age_and_size(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    fill(storage)
    stamp = (NOW - 60 * DAY).timestamp()
    for name in ("old.mp4", "old.json"):
        os.utime(tmp_path / "_cache" / "renders" / name, (stamp, stamp))
    by_age = evict(storage, None, 30 * DAY, NOW)
    assert (by_age.entries, by_age.evicted, by_age.evicted_bytes) == (2, 1, 302)
    assert storage.list_keys(CACHE_ROOT) == [f"{CACHE_ROOT}tts/new.wav"]
    assert not (tmp_path / "_cache" / "renders").exists()  # emptied folders go too
    assert evict(storage, 0, None, NOW).evicted == 1
    assert storage.list_keys("") == ["job-1/video.mp4"]


@pytest.mark.s3
def test_s3_eviction_by_size_keeps_the_newest(s3_server: S3Server) -> None:
    bucket = s3_server.create_bucket()
    storage = S3Storage(bucket, "vj", s3_server.endpoint_url, s3_server.region, session=s3_server.session())
    fill(storage)
    listed = {o.key: o.size for o in storage.list_objects(CACHE_ROOT)}
    assert listed == {f"{CACHE_ROOT}renders/old.mp4": 300, f"{CACHE_ROOT}renders/old.json": 2} | {
        f"{CACHE_ROOT}tts/new.wav": 100
    }
    later = datetime.now(UTC) + DAY
    assert evict(storage, 10_000, None, later).evicted == 0
    assert evict(storage, None, 2 * DAY, later).evicted == 0  # nothing that old
    result = evict(storage, 0, None, later)
    assert (result.entries, result.evicted, result.bytes) == (2, 2, 402)
    assert storage.list_keys("") == ["job-1/video.mp4"]


def test_evicted_speech_is_spoken_again_when_a_job_needs_it(tmp_path: Path) -> None:
    ledger = UsageLedger()
    llm = LLMClient(ledger, timeout_seconds=30, retries=0, max_output_tokens=1024)
    storage = LocalStorage(tmp_path / "store")
    narrator = Narrator(VoiceSpec(backend="espeak", voice="en-us"), "en", storage, llm, tmp_path / "scratch")
    narration = asyncio.run(narrator.narrate("One, two.", Stage.SCENARIO_CREATION))
    (segment,) = narration.segments
    assert evict(storage, 0, None, datetime.now(UTC)).evicted == 1
    assert not storage.exists(segment.audio_key)
    audio = asyncio.run(narrator.fetch(segment, tmp_path / "again.wav"))
    assert audio.stat().st_size > 1000 and storage.exists(segment.audio_key)
    assert ledger.total.tts_calls == 2  # once to narrate, once again after the eviction
