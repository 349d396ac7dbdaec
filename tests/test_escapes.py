"""The hostile-scene corpus (tests/corpus/escapes) forced through render_scene: nothing may get out."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_runs import cli_env, job_folders, read_json, run_cli
from fake_llm import FakeLLM
from processes import wait_for_no_process_with

from videojobs_runner.codecheck import check_scene_code
from videojobs_runner.sandbox import RenderLimits

CORPUS = Path(__file__).parent / "corpus" / "escapes"
ESCAPES = sorted(CORPUS.glob("*.py"))
CLASSES = frozenset(
    {
        "attribute-chain",
        "private-alias",
        "match-pattern",
        "hook-disable",
        "process-creation",
        "c-write",
        "config-redirect",
        "symlink",
        "read",
        "network",
        "error-leak",
    }
)
"""Every class of escape that issue 12 lists; each needs at least one corpus file."""

PLACEHOLDERS = ("__SECRET_FILE__", "__MARKER_DIR__", "__PORT__", "__UDP_PORT__", "__TOKEN__", "__REAL_HOME__")
LIMITS = {"timeout_seconds": 60, "memory_mb": 2048, "cpu_seconds": 60, "max_processes": 64}
ENV_SECRETS = ("OPENAI_API_KEY", "AWS_SECRET_ACCESS_KEY", "GEMINI_API_KEY")
HOST_SECRET_FILES = (Path("/etc/shadow"), Path("/var/run/secrets/kubernetes.io/serviceaccount/token"))

DRIVER = """
import asyncio, json, sys
from pathlib import Path
from videojobs.contract import Quality
from videojobs_runner.sandbox import RenderLimits, render_scene

code, workdir, limits, report = sys.argv[1:5]
outcome = asyncio.run(
    render_scene(Path(code), "Escape", Quality.LOW, Path(workdir), RenderLimits(**json.loads(limits)))
)
Path(report).write_text(json.dumps({
    "ok": outcome.ok,
    "video": str(outcome.video) if outcome.video else None,
    "failure": str(outcome.failure) if outcome.failure else None,
    "error": outcome.error,
    "log": outcome.log,
    "layout": [violation.model_dump(mode="json") for violation in outcome.layout],
}))
"""
"""Runs render_scene in a child whose initial environment holds the planted keys (its /proc/PID/environ)."""


def render_limits(**values: float) -> dict[str, float]:
    """RenderLimits keywords, without those this RenderLimits does not have (max_processes, before it)."""
    known = {field.name for field in dataclasses.fields(RenderLimits)}
    return {name: value for name, value in values.items() if name in known}


def header(path: Path, key: str) -> str:
    """The value of a `# key: value` line at the top of a corpus file ('' when missing)."""
    match = re.search(rf"^# {key}: (.+)$", path.read_text(), re.MULTILINE)
    return match.group(1).strip() if match else ""


def host_secrets() -> list[str]:
    """Credentials of this machine the render must never see: lines of the files named above we can read."""
    found = []
    for path in HOST_SECRET_FILES:
        with contextlib.suppress(OSError):
            found.extend(line for line in path.read_text().splitlines() if len(line) >= 12)
    return found


def files_under(root: Path) -> dict[str, bytes]:
    """Relative path to contents of every regular file under `root`; symlinks are listed, never followed."""
    found = {}
    for path in root.rglob("*"):
        relative = path.relative_to(root).as_posix()
        if path.is_symlink():
            found[relative] = b"symlink -> " + os.fsencode(path.readlink())
        elif path.is_file():
            with contextlib.suppress(OSError):
                found[relative] = path.read_bytes()
    return found


def fingerprints(value: str) -> list[str]:
    """Parts of a secret that betray it even when cut (LaTeX's error context, a shortened label).

    A planted secret's random hex gives three 10-digit parts; any other value is looked for whole.
    """
    random_part = max(re.findall(r"[0-9a-f]{24,}", value), key=len, default="")
    if not random_part:
        return [value]
    return [random_part[:10], random_part[len(random_part) // 2 - 5 :][:10], random_part[-10:]]


def leaks(secret_values: list[str], places: dict[str, bytes]) -> list[str]:
    """'secret in place' for every secret value found (whole or in part) in any of the places."""
    return [
        f"{value[:24]}... in {place}"
        for value in secret_values
        for place, data in places.items()
        if any(part.encode() in data for part in fingerprints(value))
    ]


@dataclasses.dataclass
class Counter:
    """A 127.0.0.1 listener's port and what reached it."""

    port: int
    hits: list[str] = dataclasses.field(default_factory=list)


@pytest.fixture
def tcp_listener() -> Iterator[Counter]:
    """A TCP listener on 127.0.0.1 that records every accepted connection."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    counter = Counter(server.getsockname()[1])
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError, OSError):
                connection, peer = server.accept()
                counter.hits.append(f"tcp from {peer}")
                connection.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield counter
    stop.set()
    thread.join()
    server.close()


@pytest.fixture
def udp_listener() -> Iterator[Counter]:
    """A UDP socket on 127.0.0.1 that records every datagram (also DNS queries sent to it)."""
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    server.settimeout(0.2)
    counter = Counter(server.getsockname()[1])
    stop = threading.Event()

    def receive() -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError, OSError):
                data, peer = server.recvfrom(65536)
                counter.hits.append(f"udp from {peer}: {data[:40]!r}")

    thread = threading.Thread(target=receive, daemon=True)
    thread.start()
    yield counter
    stop.set()
    thread.join()
    server.close()


@dataclasses.dataclass
class Planted:
    """What one test planted: secret values, the secret file, the marker dir and the process token."""

    env: dict[str, str]
    secret_file: Path
    secret_value: str
    marker_dir: Path
    token: str

    @property
    def values(self) -> list[str]:
        """Every value that must never leave the runner (the file's content and the env values)."""
        return [self.secret_value, *self.env.values(), *host_secrets()]


@pytest.fixture
def planted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Planted:
    """Unique secrets in the environment and in a file outside any work dir, and an empty marker dir."""
    env = {name: f"sk-{name[:3].lower()}-{secrets.token_hex(16)}" for name in ENV_SECRETS}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    secret_value = f"vjsecret_{secrets.token_hex(16)}"
    secret_file = tmp_path / "secrets" / "secret.txt"
    secret_file.parent.mkdir()
    secret_file.write_text(secret_value + "\n")
    marker_dir = tmp_path / "markers"
    marker_dir.mkdir()
    return Planted(env, secret_file, secret_value, marker_dir, f"vjtoken{secrets.token_hex(8)}")


def fill(source: str, planted: Planted, tcp: int, udp: int) -> str:
    """The scene source with its placeholders replaced (no str.format: the files hold braces)."""
    values = {
        "__SECRET_FILE__": str(planted.secret_file),
        "__MARKER_DIR__": str(planted.marker_dir),
        "__PORT__": str(tcp),
        "__UDP_PORT__": str(udp),
        "__TOKEN__": planted.token,
        "__REAL_HOME__": str(Path.home()),
    }
    for placeholder, value in values.items():
        source = source.replace(placeholder, value)
    return source


def test_corpus_covers_every_class_and_is_documented() -> None:
    readme = (CORPUS / "README.md").read_text()
    assert len(ESCAPES) >= 25
    seen = set()
    for path in ESCAPES:
        source = path.read_text()
        kind = header(path, "class")
        assert kind in CLASSES, f"{path.name}: unknown class {kind!r}"
        assert header(path, "tries"), f"{path.name} does not say what it tries"
        assert re.search(r"^class Escape\(Scene\):$", source, re.MULTILINE), path.name
        assert f"`{path.name}`" in readme, f"{path.name} is missing from the README"
        leftover = set(re.findall(r"__[A-Z][A-Z_]*__", source)) - set(PLACEHOLDERS)
        assert not leftover, f"{path.name}: unknown placeholders {leftover}"
        compile(fill(source, Planted({}, Path("/s"), "", Path("/m"), "t"), 1, 2), path.name, "exec")
        seen.add(kind)
    assert seen == CLASSES


def test_the_corpus_is_not_all_caught_by_the_static_check() -> None:
    """Some escapes pass the static check (so the boundary must be the OS sandbox, not the check)."""
    passing = [path.name for path in ESCAPES if check_scene_code(path.read_text()).ok]
    assert len(passing) >= 5, passing


@pytest.mark.render
@pytest.mark.parametrize("escape", ESCAPES, ids=[path.stem for path in ESCAPES])
def test_escape_is_contained(
    escape: Path, tmp_path: Path, planted: Planted, tcp_listener: Counter, udp_listener: Counter
) -> None:
    code = tmp_path / "code" / f"escape_{planted.token}.py"
    code.parent.mkdir()
    code.write_text(fill(escape.read_text(), planted, tcp_listener.port, udp_listener.port))
    workdir, report = tmp_path / "work", tmp_path / "report.json"
    before = set(files_under(tmp_path))
    limits = render_limits(**LIMITS)
    driver = subprocess.run(
        [sys.executable, "-c", DRIVER, str(code), str(workdir), json.dumps(limits), str(report)],
        env=dict(os.environ),  # the planted keys are in the driver's initial environment
        capture_output=True,
        text=True,
        timeout=limits["timeout_seconds"] + 60,
        check=False,
    )
    assert driver.returncode == 0, driver.stderr
    outcome = json.loads(report.read_text())
    time.sleep(float(header(escape, "settle") or 0))  # daemons that act after the render

    problems = []
    outside = {name for name in set(files_under(tmp_path)) - before if not name.startswith("work/")}
    outside.discard(report.name)
    problems += [f"file written outside the work dir: {name}" for name in sorted(outside)]
    if planted.secret_file.is_symlink() or planted.secret_file.read_text() != planted.secret_value + "\n":
        problems.append("the secret file was changed")
    places = {"outcome.error": outcome["error"].encode(), "outcome.log": outcome["log"].encode()}
    places["outcome.layout"] = json.dumps(outcome["layout"]).encode()
    places |= {f"work dir file {name}": data for name, data in files_under(workdir).items()}
    problems += [f"secret leaked: {leak}" for leak in leaks(planted.values, places)]
    problems += tcp_listener.hits + udp_listener.hits
    problems += [f"process left behind: {process}" for process in wait_for_no_process_with(planted.token)]
    if outcome["video"]:
        video = Path(outcome["video"])
        if video.is_symlink() or not video.resolve().is_relative_to(workdir.resolve()):
            problems.append(f"the reported video lies outside the work dir: {video}")
    assert not problems, (
        f"{escape.name} got out ({outcome['failure'] or 'rendered'}):\n"
        + "\n".join(problems)
        + f"\n--- error ---\n{outcome['error'][-1500:]}"
    )


ESCAPE_THROUGH_PIPELINE = CORPUS.parent.parent / "fixtures" / "llm" / "escape-leak"


@pytest.mark.render
@pytest.mark.llm_fixture("escape-leak")
def test_escape_through_the_pipeline_leaks_nothing(
    fake_llm: FakeLLM, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A scene that passes the static check reads the secrets and raises them: they reach no one."""
    names = ("AWS_SECRET_ACCESS_KEY", "GEMINI_API_KEY")
    env_secrets = {name: f"sk-{secrets.token_hex(16)}" for name in names}
    for name, value in env_secrets.items():  # OPENAI_API_KEY stays the fake LLM's key
        monkeypatch.setenv(name, value)
    secret_value = f"vjsecret_{secrets.token_hex(16)}"
    secret_file = tmp_path / "secrets" / "secret.txt"
    secret_file.parent.mkdir()
    secret_file.write_text(secret_value + "\n")
    hostile = fake_llm.replies["scene-code-1"][0].replace("__SECRET_FILE__", str(secret_file))
    fake_llm.replies["scene-code-1"] = [hostile]
    assert check_scene_code(hostile.split("```python")[1].split("```")[0]).ok

    out = tmp_path / "out"
    result = run_cli("generate", "Test topic", "--out", str(out), env=cli_env(MAX_FIX_ATTEMPTS="1"))

    assert "fix-scene-code-1" in fake_llm.tasks()  # the escape ran and failed, its error went back
    values = [secret_value, *env_secrets.values()]
    places = {
        f"prompt {number} ({request['task']})": json.dumps(request).encode()
        for number, request in enumerate(fake_llm.requests)
    }
    places |= {f"stored {name}": data for name, data in files_under(out).items()}
    places |= {"cli stdout": result.stdout.encode(), "cli stderr": result.stderr.encode()}
    assert not leaks(values, places)
    assert result.returncode == 0, result.stderr
    (job,) = job_folders(out)
    assert read_json(job / "status.json")["phase"] == "Succeeded"
