"""Bombs (CPU, memory, processes, threads, sleep, lingering children) end within limits, leaving none."""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import textwrap
import time
from pathlib import Path

import pytest
from processes import wait_for_no_process_with

from videojobs.contract import Quality
from videojobs_runner.sandbox import CPU_GRACE_SECONDS, FailureKind, RenderLimits, RenderOutcome, render_scene

pytestmark = pytest.mark.render

STARTUP_SLACK_SECONDS = 15.0
"""Wall time for starting the sandbox and importing Manim on a busy machine, on top of any limit."""
KILL_SLACK_SECONDS = 5.0
PROCESS_LIMIT = getattr(FailureKind, "PROCESS_LIMIT", None)

SPAWN = """
import _posixsubprocess, os, sys, threading, time


def spawn(target=None, argv=None, new_session=False):
    \"\"\"fork_exec, which raises no audit event: run `target` in a forked copy, or exec `argv`.\"\"\"
    argv = argv or [sys.executable, "-c", "pass"]
    read_end, write_end = os.pipe()
    pid = _posixsubprocess.fork_exec(
        argv, [os.fsencode(argv[0])], True, (write_end,), None, None, -1, -1, -1, -1, -1, -1,
        read_end, write_end, True, new_session, -1, None, None, None, -1, target, False,
    )
    os.close(read_end)
    os.close(write_end)
    return pid


def forever(seconds):
    \"\"\"A forked copy's whole life: sleep, then leave without running anything else.\"\"\"
    time.sleep(seconds)
    os._exit(0)
"""
"""Bomb scenes start processes with this: a scene controls its interpreter, so the audit hook is no limit."""


@dataclasses.dataclass(frozen=True)
class Bomb:
    """One bomb's render: its outcome, its wall time and the processes still carrying its token."""

    outcome: RenderOutcome
    seconds: float
    left: list[str]


def limits(**values: float) -> RenderLimits:
    """Small limits for bombs: a short timeout, 1 GB, a few CPU seconds and 64 processes, unless given."""
    chosen = {"timeout_seconds": 20, "memory_mb": 1024, "cpu_seconds": 20, "max_processes": 64} | values
    return RenderLimits(**chosen)  # type: ignore[arg-type]


def detonate(tmp_path: Path, body: str, render_limits: RenderLimits) -> Bomb:
    """Render a scene running `body`; the file name and class name carry a token found in every copy."""
    token = f"bomb{secrets.token_hex(6)}"
    code = tmp_path / f"{token}.py"
    body = textwrap.indent(textwrap.dedent(body).strip().replace("__TOKEN__", token), " " * 8)
    code.write_text(
        f"from manim import *\n{SPAWN}\n\nclass Bomb_{token}(Scene):\n    def construct(self):\n{body}\n"
    )
    started = time.monotonic()
    outcome = asyncio.run(render_scene(code, f"Bomb_{token}", Quality.LOW, tmp_path / "work", render_limits))
    seconds = time.monotonic() - started
    return Bomb(outcome, seconds, wait_for_no_process_with(token))


def test_busy_loop_stops_at_the_cpu_limit_within_its_grace(tmp_path: Path) -> None:
    cpu = 4
    bomb = detonate(tmp_path, "while True:\n    pass", limits(cpu_seconds=cpu, timeout_seconds=60))
    assert bomb.outcome.failure is FailureKind.CPU_LIMIT, bomb.outcome.error
    assert bomb.seconds < cpu + CPU_GRACE_SECONDS + STARTUP_SLACK_SECONDS
    assert not bomb.left


def test_busy_threads_share_one_cpu_limit(tmp_path: Path) -> None:
    cpu = 4
    body = """
    def spin():
        while True:
            pass
    for _ in range(4):
        threading.Thread(target=spin, daemon=True).start()
    spin()
    """
    bomb = detonate(tmp_path, body, limits(cpu_seconds=cpu, timeout_seconds=60))
    assert bomb.outcome.failure is FailureKind.CPU_LIMIT, bomb.outcome.error
    assert bomb.seconds < cpu + CPU_GRACE_SECONDS + STARTUP_SLACK_SECONDS
    assert not bomb.left


def test_busy_child_processes_end_with_the_render(tmp_path: Path) -> None:
    """Each child has its own RLIMIT_CPU; the render still ends by its timeout, and takes them along."""
    body = """
    def burn():
        while True:
            pass
    for _ in range(3):
        spawn(burn)
    time.sleep(1000)
    """
    timeout = 10
    bomb = detonate(tmp_path, body, limits(timeout_seconds=timeout, cpu_seconds=60))
    assert not bomb.outcome.ok
    assert bomb.seconds < timeout + KILL_SLACK_SECONDS + STARTUP_SLACK_SECONDS
    assert not bomb.left


def test_memory_allocated_in_c_hits_the_memory_limit(tmp_path: Path) -> None:
    body = "hoard = [np.ones(50_000_000) for _ in range(100)]"
    bomb = detonate(tmp_path, body, limits(memory_mb=1024, timeout_seconds=60))
    assert bomb.outcome.failure is FailureKind.MEMORY, bomb.outcome.error
    assert "1024 MB" in bomb.outcome.error
    assert not bomb.left


def test_memory_spread_over_child_processes_hits_the_memory_limit(tmp_path: Path) -> None:
    """Three children of 600 MB each stay under a per-process 1024 MB limit; the render's total does not."""
    body = """
    def hoard():
        kept = b"x" * 600_000_000  # written, so resident: untouched pages would cost nothing
        forever(30)
    children = [spawn(hoard) for _ in range(3)]
    time.sleep(8)
    for pid in children:
        os.waitpid(pid, 0)
    self.play(FadeIn(Dot()), run_time=0.2)
    """
    bomb = detonate(tmp_path, body, limits(memory_mb=1024, timeout_seconds=20))
    assert bomb.outcome.failure is FailureKind.MEMORY, bomb.outcome.error
    assert not bomb.left


def test_fork_bomb_hits_the_process_limit_quickly(tmp_path: Path) -> None:
    """Sleeping children until fork fails (bounded at 400, in case no limit holds)."""
    body = """
    for _ in range(400):
        spawn(lambda: forever(30))
    self.play(FadeIn(Dot()), run_time=0.2)
    """
    bomb = detonate(tmp_path, body, limits(timeout_seconds=60))
    assert PROCESS_LIMIT is not None, "FailureKind has no PROCESS_LIMIT"
    assert bomb.outcome.failure is PROCESS_LIMIT, bomb.outcome.error
    assert bomb.seconds < STARTUP_SLACK_SECONDS + KILL_SLACK_SECONDS
    assert not bomb.left


def test_persistent_fork_bomb_ends_by_the_timeout_and_leaves_nothing(tmp_path: Path) -> None:
    """Every process keeps forking (three children each, five levels deep) and retries when fork fails."""
    body = """
    def grow(depth):
        made, deadline = 0, time.monotonic() + 30
        while time.monotonic() < deadline:
            if depth >= 5 or made >= 3:
                time.sleep(0.2)
                continue
            try:
                spawn(lambda: grow(depth + 1))
            except OSError:
                time.sleep(0.05)
                continue
            made += 1
        if depth:
            os._exit(0)
    grow(0)
    self.play(FadeIn(Dot()), run_time=0.2)
    """
    timeout = 10
    bomb = detonate(tmp_path, body, limits(timeout_seconds=timeout))
    assert bomb.outcome.failure in {PROCESS_LIMIT, FailureKind.TIMEOUT}, bomb.outcome.error
    assert bomb.seconds < timeout + KILL_SLACK_SECONDS + STARTUP_SLACK_SECONDS
    assert not bomb.left


def test_thread_bomb_hits_a_limit_quickly(tmp_path: Path) -> None:
    """Threads count as processes for the process cap; a thread that cannot start may also be memory."""
    body = """
    for _ in range(5000):
        threading.Thread(target=time.sleep, args=(30,), daemon=True).start()
    self.play(FadeIn(Dot()), run_time=0.2)
    """
    bomb = detonate(tmp_path, body, limits(timeout_seconds=60))
    assert bomb.outcome.failure in {PROCESS_LIMIT, FailureKind.MEMORY}, bomb.outcome.error
    assert bomb.seconds < STARTUP_SLACK_SECONDS + KILL_SLACK_SECONDS
    assert not bomb.left


def test_sleeping_scene_is_stopped_at_the_timeout(tmp_path: Path) -> None:
    timeout = 5
    bomb = detonate(tmp_path, "time.sleep(1000)", limits(timeout_seconds=timeout))
    assert bomb.outcome.failure is FailureKind.TIMEOUT, bomb.outcome.error
    assert f"{timeout} seconds" in bomb.outcome.error
    assert bomb.seconds < timeout + KILL_SLACK_SECONDS
    assert not bomb.left


def test_child_holding_the_output_pipes_does_not_delay_a_finished_render(tmp_path: Path) -> None:
    """A detached child that keeps stdout and stderr open: the render is still a quick success."""
    body = """
    spawn(argv=[sys.executable, "-c", "import time; time.sleep(60)", "__TOKEN__"], new_session=True)
    self.play(FadeIn(Dot()), run_time=0.2)
    """
    bomb = detonate(tmp_path, body, limits(timeout_seconds=60))
    assert bomb.outcome.ok, bomb.outcome.error
    assert bomb.seconds < STARTUP_SLACK_SECONDS
    assert not bomb.left
