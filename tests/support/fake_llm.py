"""A fake OpenAI-compatible chat and speech server on 127.0.0.1, answering from fixtures, logging requests.

A fixture folder holds one text file per reply, named after the prompt's `Task:` line:
`outline.1.txt`, `scene-plan-1-of-3.1.txt`, `scene-code-2.1.txt`, `fix-scene-code-2.1.txt`, ...
Replies for a task are served in order of their number; the last one repeats once they run out.
A folder with an `extends` file (holding another folder's name) answers other tasks like that folder.
`/audio/speech` answers real speech, spoken by espeak-ng (WAV, or MP3 through ffmpeg); each request is
logged with the task `speech`.
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "llm"
_TASK = re.compile(r"^Task: (.+)$", re.MULTILINE)


def task_slug(messages: list[dict[str, Any]]) -> str:
    """The slug of the first `Task:` line in the conversation, e.g. `scene-code-2`."""
    for message in messages:
        match = _TASK.search(str(message.get("content", "")))
        if match:
            return re.sub(r"[^a-z0-9]+", "-", match.group(1).lower()).strip("-")
    return "unknown"


@dataclass
class FakeLLM:
    """Server state: the scripted replies, the request log and an optional delay per reply."""

    replies: dict[str, list[str]]
    delay_seconds: float = 0.0
    requests: list[dict[str, Any]] = field(default_factory=list)
    served: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def from_folder(cls, folder: Path) -> FakeLLM:
        """Load the replies of a fixture folder (over those of the folder named in its `extends` file)."""
        base = folder / "extends"
        inherited = cls.from_folder(folder.parent / base.read_text().strip()).replies if base.exists() else {}
        replies: dict[str, list[tuple[int, str]]] = defaultdict(list)
        for path in folder.glob("*.txt"):
            slug, _, number = path.stem.rpartition(".")
            replies[slug].append((int(number), path.read_text()))
        own = {slug: [text for _, text in sorted(items)] for slug, items in replies.items()}
        return cls(inherited | own)

    def reply_for(self, body: dict[str, Any]) -> str:
        """Log the request and pick the next reply for its task."""
        slug = task_slug(body.get("messages", []))
        with self.lock:
            self.requests.append({"task": slug, "model": body.get("model"), "messages": body.get("messages")})
            options = self.replies.get(slug)
            if not options:
                return f"No fixture for task {slug!r}."
            index = min(self.served[slug], len(options) - 1)
            self.served[slug] += 1
            return options[index]

    def speak(self, body: dict[str, Any]) -> tuple[bytes, str]:
        """Log a speech request and answer it with espeak-ng's audio in the asked format; (audio, type)."""
        text = str(body.get("input", ""))
        with self.lock:
            self.requests.append({"task": "speech", "model": body.get("model"), "input": text})
        audio_format = str(body.get("response_format") or "mp3")
        with tempfile.TemporaryDirectory() as folder:
            wav = Path(folder) / "speech.wav"
            subprocess.run(["espeak-ng", "-w", str(wav), "--stdin"], input=text.encode(), check=True)
            if audio_format == "wav":
                return wav.read_bytes(), "audio/wav"
            mp3 = Path(folder) / "speech.mp3"
            subprocess.run(["ffmpeg", "-loglevel", "error", "-i", str(wav), str(mp3)], check=True)
            return mp3.read_bytes(), "audio/mpeg"

    def speech_inputs(self) -> list[str]:
        """The text of every speech request so far, in order."""
        with self.lock:
            return [request["input"] for request in self.requests if request["task"] == "speech"]

    def tasks(self) -> list[str]:
        """The task slug of every request so far, in order."""
        with self.lock:
            return [request["task"] for request in self.requests]

    def log_to(self, path: Path) -> None:
        """Persist the request log (for runs in other processes)."""
        path.write_text(json.dumps(self.tasks()))


def _handler(state: FakeLLM) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
            route = self.path.rstrip("/")
            if not route.endswith(("chat/completions", "audio/speech")):
                self._send(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
                return
            if self.headers.get("Authorization") != "Bearer test-key":
                self._send(
                    401, {"error": {"message": "Incorrect API key provided", "type": "invalid_api_key"}}
                )
                return
            if route.endswith("audio/speech"):
                self._send_bytes(*state.speak(body))
                return
            content = state.reply_for(body)
            time.sleep(state.delay_seconds)
            prompt_tokens = sum(len(str(m.get("content", ""))) // 4 for m in body.get("messages", []))
            completion_tokens = len(content) // 4
            self._send(
                200,
                {
                    "id": f"chatcmpl-{len(state.requests)}",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": str(body.get("model", "fake")),
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": content},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {
                        "prompt_tokens": prompt_tokens,
                        "completion_tokens": completion_tokens,
                        "total_tokens": prompt_tokens + completion_tokens,
                    },
                },
            )

        def _send(self, code: int, payload: dict[str, Any]) -> None:
            self._send_bytes(json.dumps(payload).encode(), "application/json", code)

        def _send_bytes(self, data: bytes, content_type: str, code: int = 200) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


def serve(state: FakeLLM, port: int = 0) -> ThreadingHTTPServer:
    """Start the server on 127.0.0.1:`port` (0: a free one) in a daemon thread; sets `state.url`."""
    server = ThreadingHTTPServer(("127.0.0.1", port), _handler(state))
    state.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def fake_llm(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeLLM]:
    """A fake LLM loaded from `tests/fixtures/llm/<name>` (name from `@pytest.mark.llm_fixture`)."""
    marker = request.node.get_closest_marker("llm_fixture")
    name = marker.args[0] if marker else "three-scenes"
    state = FakeLLM.from_folder(FIXTURES / name)
    server = serve(state)
    monkeypatch.setenv("OPENAI_API_BASE", state.url)
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    for role in ("PLANNER_MODEL", "SCENE_MODEL", "HELPER_MODEL"):
        monkeypatch.setenv(role, "openai/gpt-4o-mini")
    yield state
    server.shutdown()
