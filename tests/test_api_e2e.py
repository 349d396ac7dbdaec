"""One real job through the API: HTTP → worker process → litellm → fake LLM → Manim renders → artifacts.

A single finished job (module-scoped) serves every artifact test; delete runs last.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from api_harness import (
    ApiServer,
    Event,
    Receiver,
    api_settings,
    create,
    read_events,
    receiving,
    verify_signature,
    wait_for,
    worker_processes,
)
from cli_runs import ffprobe
from fake_llm import FIXTURES, FakeLLM, serve

from videojobs.contract import Stage

pytestmark = pytest.mark.render

MODEL = "openai/gpt-4o-mini"


@dataclass
class Finished:
    """The deployment, its finished job and what the job sent."""

    api: ApiServer
    llm: FakeLLM
    job_id: str
    events: list[Event]
    receiver: Receiver

    @property
    def folder(self) -> Path:
        return self.api.settings.runner.output_dir / self.job_id


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Finished]:
    llm = FakeLLM.from_folder(FIXTURES / "three-scenes")
    llm_server = serve(llm)
    with pytest.MonkeyPatch.context() as patch, receiving() as receiver:
        patch.setenv("OPENAI_API_BASE", llm.url)  # inherited by the worker processes
        patch.setenv("OPENAI_API_KEY", "test-key")
        settings = api_settings(tmp_path_factory.mktemp("api-e2e"), local_workers=1)
        with ApiServer(settings) as api, api.client() as alice:
            job = create(alice, "Test topic", models={"default": MODEL}, webhook={"url": receiver.url})
            stream = read_events(alice, job["id"], last_event_id=0)
            yield Finished(api, llm, job["id"], stream.events, receiver)
    llm_server.shutdown()


def test_events_arrive_in_order_and_end_in_succeeded(finished: Finished) -> None:
    events = finished.events
    assert [e.id for e in events] == list(range(1, len(events) + 1))
    last = events[-1].data
    assert last["phase"] == "Succeeded", last
    assert (last["stage"], last["progress"], last["scenes"]["ready"]) == ("completed", 100, "3/3")
    assert last["usage"]["llm_calls"] == len(finished.llm.requests) and last["error"] is None
    progress = [e.data["progress"] for e in events]
    assert progress == sorted(progress)
    first_seen = list(dict.fromkeys(e.data["stage"] for e in events))
    assert first_seen == [stage.value for stage in Stage if stage.value in first_seen]  # pipeline order
    assert {"planning", "rendering", "combining", "storage"} <= set(first_seen)


def test_the_video_url_streams_with_ranges(finished: Finished) -> None:
    video = (finished.folder / "video.mp4").read_bytes()
    with finished.api.client() as alice, finished.api.client(None) as anonymous:
        url = alice.get(f"/v1/videos/jobs/{finished.job_id}/video-url").json()["url"]
        head = anonymous.get(url, headers={"Range": "bytes=0-1023"})
        assert head.status_code == 206 and head.content == video[:1024] and head.content[4:8] == b"ftyp"
        assert head.headers["content-range"] == f"bytes 0-1023/{len(video)}"
        tail = anonymous.get(url, headers={"Range": "bytes=-10"})
        assert tail.status_code == 206 and tail.content == video[-10:]
        assert anonymous.get(url, headers={"Range": f"bytes={len(video)}-"}).status_code == 416


def test_download_thumbnail_subtitles_and_metadata(finished: Finished, tmp_path: Path) -> None:
    base = f"/v1/videos/jobs/{finished.job_id}"
    with finished.api.client() as alice:
        download = alice.get(f"{base}/download")
        assert download.headers["content-disposition"] == 'attachment; filename="test-topic.mp4"'
        saved = tmp_path / "download.mp4"
        saved.write_bytes(download.content)
        streams = {s["codec_type"]: s for s in ffprobe(saved)["streams"]}
        assert (streams["video"]["codec_name"], streams["video"]["height"]) == ("h264", 480)
        assert alice.get(f"{base}/thumbnail").content[:2] == b"\xff\xd8"
        assert alice.get(f"{base}/subtitles").text.startswith("WEBVTT")
        assert "-->" in alice.get(f"{base}/subtitles", params={"format": "srt"}).text
        metadata = alice.get(f"{base}/metadata").json()
        assert [s["title"] for s in metadata["scenes"]] == ["Shapes", "Formula", "Summary"]
        assert metadata["id"] == finished.job_id and metadata["width"] == 854


def test_each_rendered_scene_has_a_thumbnail(finished: Finished) -> None:
    scenes = f"/v1/videos/jobs/{finished.job_id}/scenes"
    with finished.api.client() as alice, finished.api.client("bob") as bob:
        listed = alice.get(scenes).json()["data"]
        assert [(s["index"], s["title"], s["state"]) for s in listed] == [
            (1, "Shapes", "rendered"),
            (2, "Formula", "rendered"),
            (3, "Summary", "rendered"),
        ]
        assert [s["code_versions"] for s in listed] == [1, 2, 2]  # scenes 2 and 3 were fixed once
        for scene in listed:
            assert scene["thumbnail"] == f"{scenes}/{scene['index']}/thumbnail"
            poster = alice.get(scene["thumbnail"])
            assert poster.headers["content-type"] == "image/jpeg" and poster.content[:2] == b"\xff\xd8"
            stored = finished.folder / f"scenes/{scene['index']:02d}/thumbnail.jpg"
            assert poster.content == stored.read_bytes()
        assert alice.get(f"{scenes}/4/thumbnail").status_code == 404
        assert bob.get(scenes).status_code == 404 and bob.get(f"{scenes}/1/thumbnail").status_code == 404


def test_the_webhook_reports_success_signed(finished: Finished) -> None:
    headers, body = finished.receiver.wait(1)[-1]
    verify_signature(headers, body)
    payload = json.loads(body)
    assert payload["type"] == "video.job.succeeded" and payload["data"]["id"] == finished.job_id


def test_cancel_stops_a_running_worker_and_its_renders(finished: Finished) -> None:
    with finished.api.client() as alice:
        job_id = create(alice, "Cancelled topic", models={"default": MODEL})["id"]
        deadline = time.monotonic() + 120
        while len(worker_processes(job_id)) < 2:  # the worker and a render sandbox (its own session)
            assert time.monotonic() < deadline, alice.get(f"/v1/videos/jobs/{job_id}/status").json()
            time.sleep(0.05)
        response = alice.post(f"/v1/videos/jobs/{job_id}/cancel")
        assert response.status_code == 200 and response.json()["phase"] == "Cancelled"
        assert worker_processes(job_id) == []
        assert read_events(alice, job_id).events[-1].data["phase"] == "Cancelled"


def test_only_a_failed_or_cancelled_job_can_be_retried(finished: Finished) -> None:
    with finished.api.client() as alice:
        response = alice.post(f"/v1/videos/jobs/{finished.job_id}/retry")
        assert response.status_code == 409 and "Succeeded" in response.json()["detail"]


def test_a_revise_remakes_only_the_named_scene(finished: Finished) -> None:
    finished.llm.replies = FakeLLM.from_folder(FIXTURES / "revise").replies  # knows the revise prompts too
    before = len(finished.llm.requests)
    with finished.api.client() as alice, finished.api.client("bob") as bob:
        body = {"instructions": "Draw the triangle in blue", "scenes": [2]}
        assert bob.post(f"/v1/videos/jobs/{finished.job_id}/revise", json=body).status_code == 404
        assert (
            alice.post(f"/v1/videos/jobs/{finished.job_id}/revise", json=body | {"scenes": [0]}).status_code
            == 422
        )
        response = alice.post(f"/v1/videos/jobs/{finished.job_id}/revise", json=body)
        assert response.status_code == 202, response.text
        revise = response.json()
        assert revise["request"]["revision"] == {"parent": finished.job_id, **body}
        done = wait_for(alice, revise["id"], "Succeeded", "Failed", timeout=300)
        assert done["phase"] == "Succeeded", done
        metadata = alice.get(f"/v1/videos/jobs/{revise['id']}/metadata").json()
        assert metadata["revision_of"] == finished.job_id and metadata["revised_scenes"] == [2]
        scenes = alice.get(f"/v1/videos/jobs/{revise['id']}/scenes").json()["data"]
        assert all(scene["thumbnail"] for scene in scenes)  # copied with the kept scenes, made for scene 2
    asked = {r["task"] for r in finished.llm.requests[before:] if r["task"] != "speech"}
    assert asked == {"revise-scene-plan-2-of-3", "revise-scene-code-2"}, asked


def test_retry_resumes_a_failed_job_without_repeating_stored_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    llm = FakeLLM.from_folder(FIXTURES / "scene-keeps-failing")
    llm_server = serve(llm)
    monkeypatch.setenv("OPENAI_API_BASE", llm.url)
    try:
        settings = api_settings(tmp_path, local_workers=1)
        with ApiServer(settings) as api, api.client() as alice:
            job_id = create(alice, "Test topic", models={"default": MODEL})["id"]
            failed = wait_for(alice, job_id, "Succeeded", "Failed", timeout=300)
            assert failed["phase"] == "Failed" and failed["error"]["recoverable"], failed
            scenes = alice.get(f"/v1/videos/jobs/{job_id}/scenes").json()["data"]
            assert [(s["state"], s["thumbnail"] is not None) for s in scenes] == [
                ("rendered", True),
                ("rendered", True),
                ("failed", False),
            ]
            status_text = json.dumps(alice.get(f"/v1/videos/jobs/{job_id}").json())
            assert str(settings.runner.output_dir) not in status_text, "a server path reached the API user"
            before = len(llm.requests)
            assert {"outline", "scene-plan-3-of-3", "scene-code-1"} <= {r["task"] for r in llm.requests}

            llm.replies = FakeLLM.from_folder(FIXTURES / "three-scenes").replies  # the model does better now
            retried = alice.post(f"/v1/videos/jobs/{job_id}/retry")
            assert retried.status_code == 202 and retried.json()["phase"] == "Queued", retried.text
            done = wait_for(alice, job_id, "Succeeded", "Failed", timeout=300)
            assert done["phase"] == "Succeeded" and done["scenes"]["ready"] == "3/3", done
            again = [r["task"] for r in llm.requests[before:] if r["task"] != "speech"]
            assert again and all(task.endswith("-3") for task in again), again  # scene 3's code alone
            assert done["usage"]["llm_calls"] == len([r for r in llm.requests if r["task"] != "speech"])
    finally:
        llm_server.shutdown()


def test_delete_removes_the_finished_job_and_its_artifacts(finished: Finished) -> None:
    assert (finished.folder / "video.mp4").exists()
    with finished.api.client() as alice:
        assert alice.delete(f"/v1/videos/jobs/{finished.job_id}").status_code == 204
        assert alice.get(f"/v1/videos/jobs/{finished.job_id}").status_code == 404
    assert not finished.folder.exists()
