"""Render one scene in a resource-limited worker process inside the OS sandbox, and read what it made."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import resource
import secrets
import signal
import stat
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from pydantic import ValidationError

from videojobs.contract import Quality
from videojobs.settings import RenderIsolation, Settings
from videojobs_runner.isolation import (
    INSIDE_CODE_DIR,
    INSIDE_WORKDIR,
    Launch,
    bwrap_launch,
    worker_env,
)
from videojobs_runner.layout import VIOLATIONS, LayoutViolation
from videojobs_runner.memory_cgroup import MemoryCgroup

logger = logging.getLogger(__name__)

SIGNAL_EXIT_BASE = 128
MAX_HARNESS_FAULTS = 5
FAULT_MAX_CHARS = 500
CONTROL_CHARACTERS = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|[\x00-\x08\x0b-\x1f\x7f]")
"""ANSI escape sequences and control characters (tab and newline stay) in text from the render."""
FILE_SIZE_LIMIT = 2 * 1024**3
CPU_GRACE_SECONDS = 5
LOG_LIMIT_BYTES = 1024**2
READER_GRACE_SECONDS = 5.0
ERROR_MAX_LINES = 60
ERROR_MAX_CHARS = 4000
PROCESS_MARKERS = ("BlockingIOError", "fork: Resource temporarily unavailable")
MEMORY_MARKERS = ("MemoryError", "Cannot allocate memory", "std::bad_alloc", "Error creating thread")
WORKER_COMMAND = (sys.executable, "-I", "-m", "videojobs_runner.render_worker")


class FailureKind(StrEnum):
    """Why a render produced no video."""

    ERROR = "error"
    LATEX = "latex"
    TIMEOUT = "timeout"
    MEMORY = "memory"
    CPU_LIMIT = "cpu_limit"
    PROCESS_LIMIT = "process_limit"
    KILLED = "killed"
    NO_OUTPUT = "no_output"


@dataclass(frozen=True)
class RenderLimits:
    """Resource limits of one render process."""

    timeout_seconds: float
    memory_mb: int
    cpu_seconds: int
    max_processes: int = 256

    @classmethod
    def from_settings(cls, settings: Settings) -> RenderLimits:
        """The limits configured for the deployment."""
        return cls(
            timeout_seconds=settings.render_timeout_seconds,
            memory_mb=settings.render_memory_mb,
            cpu_seconds=settings.render_cpu_seconds,
            max_processes=settings.render_max_processes,
        )


class PodRenderer(Protocol):
    """Runs one render in a pod of its own (RENDER_ISOLATION=pod: videojobs_runner.render_pod)."""

    async def render(
        self, worker_args: list[str], code_path: Path, workdir: Path, limits: RenderLimits
    ) -> _Finished:
        """Render with the worker's `worker_args`; its outputs land in `workdir`/media."""
        ...


@dataclass(frozen=True)
class SandboxConfig:
    """Which OS sandbox renders run in, and the uids a root runner gives them."""

    isolation: RenderIsolation = RenderIsolation.BWRAP
    uids: range = field(default_factory=lambda: range(200_000, 300_000))
    pods: PodRenderer | None = None
    """Where renders run with RENDER_ISOLATION=pod."""

    @classmethod
    def from_settings(cls, settings: Settings) -> SandboxConfig:
        """The sandbox configured for the deployment."""
        base = settings.render_uid_base
        pods: PodRenderer | None = None
        if settings.render_isolation is RenderIsolation.POD:
            from videojobs_runner.render_pod import RenderPods  # it builds on this module

            pods = RenderPods.from_settings(settings)
        return cls(settings.render_isolation, range(base, base + settings.render_uid_count), pods)


DEFAULT_SANDBOX = SandboxConfig()


@dataclass(frozen=True)
class RenderOutcome:
    """What a render produced: a video and its layout check, or a failure with a message and the log."""

    ok: bool
    video: Path | None = None
    duration_seconds: float | None = None
    blocks: tuple[float, ...] = ()
    """Measured seconds of each narration block (empty when the scene had no narration)."""
    layout: tuple[LayoutViolation, ...] = ()
    harness_faults: tuple[str, ...] = ()
    """Errors inside the harness's own checks (never the scene's fault); the scene rendered unchecked."""
    failure: FailureKind | None = None
    error: str = ""
    log: str = ""

    @classmethod
    def failed(cls, failure: FailureKind, error: str, log: str) -> RenderOutcome:
        """A failed render."""
        return cls(ok=False, failure=failure, error=trim_error(clean(error)), log=log)


@dataclass(frozen=True)
class _Finished:
    """How the worker process ended."""

    returncode: int
    timed_out: bool
    stdout: str
    stderr: str
    out_of_memory: bool = False
    """The kernel killed a process of the render for going over the memory of its cgroup."""

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
    sandbox: SandboxConfig = DEFAULT_SANDBOX,
) -> RenderOutcome:
    """Render `scene_class` from `code_path` into `workdir`/media in a sandboxed worker process.

    `narration` holds the spoken seconds of each narration segment; the render is paced to them.
    The layout check reports objects closer than `layout_margin` units to the frame's edges.
    """
    workdir = await asyncio.to_thread(_prepare, workdir)
    worker_args = [
        scene_class,
        quality.value,
        f"--layout-margin={layout_margin}",
        f"--max-processes={limits.max_processes}",
        *([] if enable_caching else ["--no-cache"]),
    ]
    if narration:
        worker_args += ["--narration", ",".join(f"{seconds:.3f}" for seconds in narration)]
    if sandbox.pods is not None:
        finished = await sandbox.pods.render(worker_args, code_path, workdir, limits)
    else:
        command = [*WORKER_COMMAND, *worker_args]
        launch = await asyncio.to_thread(_launch, command, code_path, workdir, sandbox)
        finished = await _run(launch, workdir, limits)
    return interpret(finished, workdir, limits)


def _prepare(workdir: Path) -> Path:
    """The absolute work dir, created with its temp dir."""
    workdir = workdir.resolve()
    (workdir / "tmp").mkdir(parents=True, exist_ok=True)
    return workdir


def _launch(command: list[str], code_path: Path, workdir: Path, sandbox: SandboxConfig) -> Launch:
    """The worker `command` completed with its scene file and media dir, in the configured sandbox."""
    code_path = code_path.resolve()
    if sandbox.isolation is RenderIsolation.NONE:
        logger.warning("UNSAFE: rendering LLM-written code without an OS sandbox (RENDER_ISOLATION=none)")
        command += [f"--code={code_path}", f"--media-dir={workdir / 'media'}"]
        return Launch(argv=command, env=worker_env(workdir))
    command += [f"--code={INSIDE_CODE_DIR / code_path.name}", f"--media-dir={INSIDE_WORKDIR / 'media'}"]
    return bwrap_launch(command, code_path, workdir, sandbox.uids)


def limit_resources(limits: RenderLimits, cgroup: MemoryCgroup | None = None) -> Callable[[], None]:
    """A preexec_fn setting the worker's memory, CPU, core-dump and file-size limits (and its cgroup)."""
    memory = limits.memory_mb * 1024**2

    def apply() -> None:
        if cgroup is not None:
            cgroup.enter()
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


async def _run(launch: Launch, workdir: Path, limits: RenderLimits) -> _Finished:
    """Run the worker in its own session; SIGKILL its whole process group on timeout or cancellation.

    Under bubblewrap the worker is the first child of the sandbox's PID namespace: when it ends, or
    when bubblewrap is killed, the kernel ends every process left in the namespace.
    """
    name = f"videojobs-render-{os.getpid()}-{secrets.token_hex(4)}"
    cgroup = await asyncio.to_thread(MemoryCgroup.create, name, limits.memory_mb * 1024**2)
    try:
        return await _run_in(cgroup, launch, workdir, limits)
    finally:
        if cgroup is not None:
            await asyncio.to_thread(cgroup.remove)


async def _run_in(
    cgroup: MemoryCgroup | None, launch: Launch, workdir: Path, limits: RenderLimits
) -> _Finished:
    """_run with the worker in `cgroup`, when there is one."""
    process = await asyncio.create_subprocess_exec(
        *launch.argv,
        cwd=workdir,
        env=launch.env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
        preexec_fn=limit_resources(limits, cgroup),
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
    if launch.wrapped and returncode > SIGNAL_EXIT_BASE:
        returncode = SIGNAL_EXIT_BASE - returncode  # bubblewrap reports a signal as 128 + its number
    out_of_memory = cgroup is not None and await asyncio.to_thread(cgroup.ran_out)
    return _Finished(returncode, timed_out, _decode(stdout), _decode(stderr), out_of_memory)


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
    """Bytes from a pipe as text, without terminal escapes or control characters."""
    return clean(data.decode("utf-8", errors="replace"))


def clean(text: str) -> str:
    """Text from the render with ANSI escapes and control characters (but tabs and newlines) removed."""
    return CONTROL_CHARACTERS.sub("", text)


def interpret(finished: _Finished, workdir: Path, limits: RenderLimits) -> RenderOutcome:
    """Turn how the worker ended into a RenderOutcome."""
    log = finished.log
    if finished.out_of_memory:  # even where the worker went on without the process the kernel killed
        message = (
            f"The scene's processes together ran out of memory (limit {limits.memory_mb} MB) and one was "
            "killed. Use fewer, smaller objects and do not start processes."
        )
        return RenderOutcome.failed(FailureKind.MEMORY, message, log)
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
    """A success when the reported video is a regular file in the work dir's media, reached by no link."""
    video = _media_file(workdir / "media", report.get("video"))
    if video is None:
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
    faults = report.get("harness_faults")
    harness_faults = (
        [clean(str(fault))[:FAULT_MAX_CHARS] for fault in faults] if isinstance(faults, list) else []
    )
    try:
        layout = tuple(VIOLATIONS.validate_python(report.get("layout", [])))
    except ValidationError as error:
        layout = ()
        harness_faults.append(f"unreadable layout report: {error.error_count()} errors")
    for fault in harness_faults:
        log_fault(fault)
    return RenderOutcome(
        ok=True,
        video=video,
        duration_seconds=seconds,
        blocks=blocks,
        layout=layout,
        harness_faults=tuple(harness_faults[:MAX_HARNESS_FAULTS]),
        log=log,
    )


def log_fault(fault: str) -> None:
    """Log a fault of the harness's own checks: ours to fix, never sent to the model."""
    logger.error("render harness fault (the scene rendered unchecked): %s", fault)


def _media_file(media: Path, reported: object) -> Path | None:
    """The reported video (relative to the media dir): a non-empty regular file that no link leads to."""
    if not isinstance(reported, str) or not reported or Path(reported).is_absolute():
        return None
    candidate = media / reported
    if ".." in Path(reported).parts or os.path.realpath(candidate) != str(candidate):
        return None
    try:
        info = candidate.lstat()
    except OSError:
        return None
    return candidate if stat.S_ISREG(info.st_mode) and info.st_size > 0 else None


def _error_outcome(report: dict[str, object], limits: RenderLimits, log: str) -> RenderOutcome:
    """A failure the worker caught and described."""
    kinds = {FailureKind.ERROR, FailureKind.LATEX, FailureKind.MEMORY, FailureKind.PROCESS_LIMIT}
    kind = str(report.get("kind", FailureKind.ERROR))
    failure = FailureKind(kind) if kind in kinds else FailureKind.ERROR
    message = str(report["error"])
    if failure is FailureKind.MEMORY:
        message = f"The scene ran out of memory (limit {limits.memory_mb} MB).\n{message}"
    if failure is FailureKind.PROCESS_LIMIT:
        message = _process_limit_message(limits, message)
    return RenderOutcome.failed(failure, message, log)


def _process_limit_message(limits: RenderLimits, detail: str) -> str:
    """Why a render that started too many processes or threads failed."""
    return (
        f"The scene started more processes or threads than allowed ({limits.max_processes}). "
        f"Scenes must not start processes or threads.\n{detail}"
    )


def _crash_outcome(finished: _Finished, limits: RenderLimits, log: str) -> RenderOutcome:
    """A worker that ended without a report: out of memory, killed by a signal, or exited quietly."""
    tail = finished.stderr.strip()
    if any(marker in tail for marker in PROCESS_MARKERS):
        return RenderOutcome.failed(FailureKind.PROCESS_LIMIT, _process_limit_message(limits, tail), log)
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
