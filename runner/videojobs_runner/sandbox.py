"""Render one scene in a separate, resource-limited process with a clean environment."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import shutil
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from videojobs.contract import Quality
from videojobs.settings import Settings
from videojobs_runner.layout import VIOLATIONS, LayoutViolation
from videojobs_runner.render_worker import ALLOWED_EXECUTABLES

SYSTEM_PATH = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
FILE_SIZE_LIMIT = 2 * 1024**3
CPU_GRACE_SECONDS = 5
LOG_LIMIT_BYTES = 1024**2
READER_GRACE_SECONDS = 5.0
ERROR_MAX_LINES = 60
ERROR_MAX_CHARS = 4000
MEMORY_MARKERS = ("MemoryError", "Cannot allocate memory", "std::bad_alloc", "Error creating thread")


class FailureKind(StrEnum):
    """Why a render produced no video."""

    ERROR = "error"
    LATEX = "latex"
    TIMEOUT = "timeout"
    MEMORY = "memory"
    CPU_LIMIT = "cpu_limit"
    KILLED = "killed"
    NO_OUTPUT = "no_output"


@dataclass(frozen=True)
class RenderLimits:
    """Resource limits of one render process."""

    timeout_seconds: float
    memory_mb: int
    cpu_seconds: int

    @classmethod
    def from_settings(cls, settings: Settings) -> RenderLimits:
        """The limits configured for the deployment."""
        return cls(
            timeout_seconds=settings.render_timeout_seconds,
            memory_mb=settings.render_memory_mb,
            cpu_seconds=settings.render_cpu_seconds,
        )


@dataclass(frozen=True)
class RenderOutcome:
    """What a render produced: a video and its layout check, or a failure with a message and the log."""

    ok: bool
    video: Path | None = None
    duration_seconds: float | None = None
    blocks: tuple[float, ...] = ()
    """Measured seconds of each narration block (empty when the scene had no narration)."""
    layout: tuple[LayoutViolation, ...] = ()
    failure: FailureKind | None = None
    error: str = ""
    log: str = ""

    @classmethod
    def failed(cls, failure: FailureKind, error: str, log: str) -> RenderOutcome:
        """A failed render."""
        return cls(ok=False, failure=failure, error=trim_error(error), log=log)


@dataclass(frozen=True)
class _Finished:
    """How the worker process ended."""

    returncode: int
    timed_out: bool
    stdout: str
    stderr: str

    @property
    def log(self) -> str:
        """stdout and stderr together, as kept in the job's artifacts."""
        return f"--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}"


async def render_scene(
    code_path: Path,
    scene_class: str,
    quality: Quality,
    workdir: Path,
    limits: RenderLimits,
    *,
    enable_caching: bool = True,
    narration: Sequence[float] = (),
    layout_margin: float = 0.0,
) -> RenderOutcome:
    """Render `scene_class` from `code_path` into `workdir`/media in a sandboxed worker process.

    `narration` holds the spoken seconds of each narration segment; the render is paced to them.
    The layout check reports objects closer than `layout_margin` units to the frame's edges.
    """
    command, workdir = worker_command(
        code_path, scene_class, quality, workdir, enable_caching=enable_caching, layout_margin=layout_margin
    )
    if narration:
        command += ["--narration", ",".join(f"{seconds:.3f}" for seconds in narration)]
    finished = await _run(command, workdir, limits)
    return interpret(finished, workdir, limits)


def worker_command(
    code_path: Path,
    scene_class: str,
    quality: Quality,
    workdir: Path,
    *,
    enable_caching: bool,
    layout_margin: float,
) -> tuple[list[str], Path]:
    """The worker's command line and the resolved workdir, created with its temp dir."""
    workdir = workdir.resolve()
    (workdir / "tmp").mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-I",
        "-m",
        "videojobs_runner.render_worker",
        str(code_path.resolve()),
        scene_class,
        quality.value,
        str(workdir / "media"),
        *([] if enable_caching else ["--no-cache"]),
        f"--layout-margin={layout_margin}",
    ]
    return command, workdir


def sandbox_env(workdir: Path) -> dict[str, str]:
    """The worker's whole environment: a search path, scratch dirs and single-threaded math; no secrets."""
    tool_dirs = [
        str(Path(found).parent) for tool in sorted(ALLOWED_EXECUTABLES) if (found := shutil.which(tool))
    ]
    search_path = dict.fromkeys([str(Path(sys.executable).parent), *SYSTEM_PATH, *tool_dirs])
    return {
        "PATH": os.pathsep.join(search_path),
        "HOME": str(workdir),
        "TMPDIR": str(workdir / "tmp"),
        "MPLCONFIGDIR": str(workdir / "tmp" / "matplotlib"),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }


def limit_resources(limits: RenderLimits) -> Callable[[], None]:
    """A preexec_fn setting the worker's memory, CPU, core-dump and file-size limits."""
    memory = limits.memory_mb * 1024**2

    def apply() -> None:
        _set_limit(resource.RLIMIT_AS, memory, memory)
        _set_limit(resource.RLIMIT_CPU, limits.cpu_seconds, limits.cpu_seconds + CPU_GRACE_SECONDS)
        _set_limit(resource.RLIMIT_CORE, 0, 0)
        _set_limit(resource.RLIMIT_FSIZE, FILE_SIZE_LIMIT, FILE_SIZE_LIMIT)

    return apply


def _set_limit(kind: int, soft: int, hard: int) -> None:
    """Lower a resource limit, never above the hard limit already in force."""
    _, current = resource.getrlimit(kind)
    if current != resource.RLIM_INFINITY:
        soft, hard = min(soft, current), min(hard, current)
    resource.setrlimit(kind, (soft, hard))


async def _run(command: list[str], workdir: Path, limits: RenderLimits) -> _Finished:
    """Run the worker in its own session; SIGKILL its whole process group on timeout or cancellation."""
    process = await asyncio.create_subprocess_exec(
        *command,
        cwd=workdir,
        env=sandbox_env(workdir),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
        preexec_fn=limit_resources(limits),
    )
    assert process.stdout is not None and process.stderr is not None
    stdout, stderr = bytearray(), bytearray()
    readers = asyncio.gather(_drain(process.stdout, stdout), _drain(process.stderr, stderr))
    timed_out = False
    try:
        await asyncio.wait_for(process.wait(), limits.timeout_seconds)
    except TimeoutError:
        timed_out = True
    finally:
        _kill_group(process.pid)
        returncode = await process.wait()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(readers, READER_GRACE_SECONDS)
    return _Finished(returncode, timed_out, _decode(stdout), _decode(stderr))


async def _drain(stream: asyncio.StreamReader, sink: bytearray) -> None:
    """Read a pipe to its end, keeping only the last LOG_LIMIT_BYTES."""
    while chunk := await stream.read(65536):
        sink.extend(chunk)
        if len(sink) > LOG_LIMIT_BYTES:
            del sink[: len(sink) - LOG_LIMIT_BYTES]


def _kill_group(pgid: int) -> None:
    """SIGKILL every process left in the worker's process group."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _decode(data: bytearray) -> str:
    """Bytes from a pipe as text."""
    return data.decode("utf-8", errors="replace")


def interpret(finished: _Finished, workdir: Path, limits: RenderLimits) -> RenderOutcome:
    """Turn how the worker ended into a RenderOutcome."""
    log = finished.log
    if finished.timed_out:
        message = (
            f"The render did not finish within {limits.timeout_seconds:g} seconds and was stopped. "
            "Check for endless loops and keep the scene's animations shorter and lighter."
        )
        return RenderOutcome.failed(FailureKind.TIMEOUT, message, log)
    if finished.returncode == -signal.SIGXCPU:
        message = (
            f"The render used more than {limits.cpu_seconds} CPU seconds and was stopped. "
            "Use fewer, simpler objects and animations."
        )
        return RenderOutcome.failed(FailureKind.CPU_LIMIT, message, log)
    report = _last_report(finished.stdout)
    if finished.returncode == 0 and "video" in report:
        return _video_outcome(report, workdir, log)
    if "error" in report:
        return _error_outcome(report, limits, log)
    return _crash_outcome(finished, limits, log)


def _last_report(stdout: str) -> dict[str, object]:
    """The worker's final JSON line (the last stdout line that parses as a JSON object)."""
    for line in reversed(stdout.splitlines()):
        if line.startswith("{"):
            with contextlib.suppress(ValueError):
                report = json.loads(line)
                if isinstance(report, dict):
                    return report
    return {}


def _video_outcome(report: dict[str, object], workdir: Path, log: str) -> RenderOutcome:
    """A success when the reported video exists inside the workdir."""
    video = Path(str(report["video"])).resolve()
    if not video.is_file() or not video.is_relative_to(workdir) or video.stat().st_size == 0:
        message = (
            "The scene rendered but produced no video file. Make sure construct() plays at least one "
            "animation (self.play) or waits (self.wait)."
        )
        return RenderOutcome.failed(FailureKind.NO_OUTPUT, message, log)
    duration = report.get("duration")
    seconds = float(duration) if isinstance(duration, int | float) else None
    reported = report.get("blocks")
    blocks = (
        tuple(float(b) for b in reported if isinstance(b, int | float)) if isinstance(reported, list) else ()
    )
    layout = tuple(VIOLATIONS.validate_python(report.get("layout", [])))
    return RenderOutcome(
        ok=True, video=video, duration_seconds=seconds, blocks=blocks, layout=layout, log=log
    )


def _error_outcome(report: dict[str, object], limits: RenderLimits, log: str) -> RenderOutcome:
    """A failure the worker caught and described."""
    kind = str(report.get("kind", FailureKind.ERROR))
    failure = FailureKind(kind) if kind in {"error", "latex", "memory"} else FailureKind.ERROR
    message = str(report["error"])
    if failure is FailureKind.MEMORY:
        message = f"The scene ran out of memory (limit {limits.memory_mb} MB).\n{message}"
    return RenderOutcome.failed(failure, message, log)


def _crash_outcome(finished: _Finished, limits: RenderLimits, log: str) -> RenderOutcome:
    """A worker that ended without a report: out of memory, killed by a signal, or exited quietly."""
    tail = finished.stderr.strip()
    if any(marker in tail for marker in MEMORY_MARKERS):
        message = f"The scene ran out of memory (limit {limits.memory_mb} MB).\n{tail}"
        return RenderOutcome.failed(FailureKind.MEMORY, message, log)
    if finished.returncode < 0:
        name = _signal_name(-finished.returncode)
        return RenderOutcome.failed(
            FailureKind.KILLED, f"The render process was killed by {name}.\n{tail}", log
        )
    if finished.returncode == 0:
        message = "The render process exited without reporting a video. Do not exit or print from the scene."
        return RenderOutcome.failed(FailureKind.NO_OUTPUT, message, log)
    return RenderOutcome.failed(
        FailureKind.ERROR, tail or f"The render failed (exit {finished.returncode}).", log
    )


def _signal_name(number: int) -> str:
    """SIGKILL for 9, and so on."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def trim_error(text: str) -> str:
    """A message cut to ERROR_MAX_LINES lines and ERROR_MAX_CHARS characters, keeping its start and end."""
    text = text.strip()
    lines = text.splitlines()
    if len(lines) > ERROR_MAX_LINES:
        head = ERROR_MAX_LINES // 3
        lines = [*lines[:head], "[...]", *lines[head - ERROR_MAX_LINES + 1 :]]
    trimmed = "\n".join(lines)
    if len(trimmed) > ERROR_MAX_CHARS:
        head = ERROR_MAX_CHARS // 4
        trimmed = f"{trimmed[:head]}\n[...]\n{trimmed[head - ERROR_MAX_CHARS + 8 :]}"
    return trimmed
