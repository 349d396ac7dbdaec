"""Real low-quality renders through the OS sandbox: videos, classified failures, limits, env, audit hook."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import av
import pytest

from videojobs.contract import Quality
from videojobs.settings import Settings
from videojobs_runner import isolation
from videojobs_runner.isolation import INSIDE_WORKDIR, worker_env
from videojobs_runner.sandbox import FailureKind, RenderLimits, RenderOutcome, render_scene

LIMITS = RenderLimits(timeout_seconds=120, memory_mb=2048, cpu_seconds=120)


def write_scene(directory: Path, body: str, header: str = "") -> Path:
    """A scene file whose construct() runs `body` (line 6 is the body's first line)."""
    indented = textwrap.indent(textwrap.dedent(body).strip(), " " * 8)
    code = f"from manim import *\n{header}\n\nclass Demo(Scene):\n    def construct(self):\n{indented}\n"
    path = directory / "scene.py"
    path.write_text(code)
    return path


def render(tmp_path: Path, body: str, header: str = "", limits: RenderLimits = LIMITS) -> RenderOutcome:
    """Render the scene made of `body` in tmp_path/work."""
    code = write_scene(tmp_path, body, header)
    return asyncio.run(render_scene(code, "Demo", Quality.LOW, tmp_path / "work", limits))


def test_limits_come_from_settings() -> None:
    settings = Settings(
        render_timeout_seconds=12, render_memory_mb=3000, render_cpu_seconds=34, render_max_processes=99
    )
    assert RenderLimits.from_settings(settings) == RenderLimits(12, 3000, 34, 99)


@pytest.mark.render
def test_good_scene_renders_to_mp4(tmp_path: Path) -> None:
    started = time.monotonic()
    outcome = render(
        tmp_path,
        """
        title = Text("Hi").to_edge(UP)
        formula = MathTex(r"e^{i\\pi} + 1 = 0")
        label = Tex(r"Euler's \\LaTeX")
        self.play(Write(title), FadeIn(formula), run_time=0.6)
        self.play(FadeIn(label.next_to(formula, DOWN)), run_time=0.4)
        """,
    )
    elapsed = time.monotonic() - started
    assert outcome.ok, outcome.log
    assert outcome.failure is None
    assert outcome.video is not None and outcome.video.suffix == ".mp4"
    assert outcome.video.is_relative_to((tmp_path / "work").resolve())
    assert outcome.video.stat().st_size > 1000
    assert outcome.duration_seconds == pytest.approx(1.0, abs=0.2)
    with av.open(str(outcome.video)) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height) == (854, 480)
        assert container.duration is not None
        assert container.duration / 1_000_000 == pytest.approx(1.0, abs=0.25)
    print(f"tiny low-quality render with LaTeX: {elapsed:.1f}s")


@pytest.mark.render
def test_exception_is_reported_with_its_scene_line(tmp_path: Path) -> None:
    outcome = render(tmp_path, "self.play(Create(Circle()), run_time=0.2)\nvalues = [1, 2][5]")
    assert not outcome.ok
    assert outcome.failure is FailureKind.ERROR
    assert "IndexError: list index out of range" in outcome.error
    assert "line 7, in construct" in outcome.error
    assert "values = [1, 2][5]" in outcome.error
    assert "site-packages" not in outcome.error
    assert len(outcome.error.splitlines()) <= 60
    assert "Traceback" in outcome.log


@pytest.mark.render
def test_bad_latex_is_reported_plainly(tmp_path: Path) -> None:
    outcome = render(tmp_path, 'self.play(Write(MathTex(r"\\frac{")))')
    assert outcome.failure is FailureKind.LATEX
    assert outcome.error.startswith("LaTeX could not compile")
    assert "\\frac{" in outcome.error
    assert "! Missing } inserted." in outcome.error
    assert "dvisvgm:raw" not in outcome.error
    assert "line 6, in construct" in outcome.error


@pytest.mark.render
def test_endless_loop_is_killed_at_the_timeout(tmp_path: Path) -> None:
    limits = RenderLimits(timeout_seconds=5, memory_mb=2048, cpu_seconds=120)
    started = time.monotonic()
    outcome = render(tmp_path, "while True:\n    pass", limits=limits)
    assert outcome.failure is FailureKind.TIMEOUT
    assert "5 seconds" in outcome.error
    assert time.monotonic() - started < 15


@pytest.mark.render
def test_cpu_limit_stops_a_busy_scene(tmp_path: Path) -> None:
    limits = RenderLimits(timeout_seconds=60, memory_mb=2048, cpu_seconds=8)
    outcome = render(tmp_path, "while True:\n    pass", limits=limits)
    assert outcome.failure is FailureKind.CPU_LIMIT
    assert "8 CPU seconds" in outcome.error


@pytest.mark.render
def test_memory_bomb_hits_the_memory_limit(tmp_path: Path) -> None:
    limits = RenderLimits(timeout_seconds=60, memory_mb=1024, cpu_seconds=60)
    outcome = render(tmp_path, "hoard = [bytearray(50_000_000) for _ in range(1000)]", limits=limits)
    assert outcome.failure is FailureKind.MEMORY
    assert "out of memory (limit 1024 MB)" in outcome.error
    assert "MemoryError" in outcome.error


@pytest.mark.render
def test_still_scene_becomes_a_short_clip(tmp_path: Path) -> None:
    outcome = render(tmp_path, "self.add(Circle(color=RED))")
    assert outcome.ok, outcome.log
    assert outcome.video is not None
    assert outcome.duration_seconds == pytest.approx(1.0, abs=0.1)
    with av.open(str(outcome.video)) as container:
        frame = next(container.decode(video=0)).to_ndarray(format="rgb24")
    assert frame[..., 0].max() > 200  # the red circle is drawn


@pytest.mark.render
def test_scene_that_draws_nothing_still_yields_a_clip(tmp_path: Path) -> None:
    outcome = render(tmp_path, "circle = Circle()")
    assert outcome.ok, outcome.log


SECRETS = {"OPENAI_API_KEY": "sk-test-secret", "AWS_SECRET_ACCESS_KEY": "aws-secret", "KUBECONFIG": "/kube"}


@pytest.mark.render
def test_scene_sees_no_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    outcome = render(
        tmp_path,
        """
        Path(tempfile.gettempdir(), "env.json").write_text(json.dumps(dict(os.environ)))
        self.play(FadeIn(Dot()), run_time=0.2)
        """,
        header="import json, os, tempfile\nfrom pathlib import Path",
    )
    assert outcome.ok, outcome.log
    seen = json.loads((tmp_path / "work" / "tmp" / "env.json").read_text())
    assert set(seen) <= {*worker_env(INSIDE_WORKDIR), "PWD"}  # bwrap sets PWD for --chdir
    assert not set(SECRETS) & set(seen)
    assert not any(value in json.dumps(seen) for value in SECRETS.values())
    assert seen["HOME"] == str(INSIDE_WORKDIR)
    assert seen["openin_any"] == "p" and seen["shell_escape"] == "f"


BLOCKED = {
    "socket": ("socket.create_connection(('127.0.0.1', 9), timeout=1)", "import socket", "socket."),
    "subprocess": ("subprocess.run(['id'], check=True)", "import subprocess", "starting 'id'"),
    "shell": ("os.system('id')", "import os", "os.system"),
    "signal_parent": ("os.kill(os.getppid(), 0)", "import os", "os.kill"),
    "shell_escape_tex": (
        "subprocess.run(['latex', '-shell-escape', 'x.tex'])",
        "import subprocess",
        "shell escape",
    ),
    "write_outside": ("open(OUTSIDE, 'w').write('x')", "OUTSIDE = '{outside}'", "writing to"),
    "relative_write": ("open('escape.txt', 'w').write('x')", "", "writing to 'escape.txt'"),
    "lualatex": ("subprocess.run(['lualatex', 'x.tex'])", "import subprocess", "only LaTeX tools"),
}


@pytest.mark.render
@pytest.mark.parametrize(("statement", "header", "expected"), BLOCKED.values(), ids=BLOCKED.keys())
def test_audit_hook_blocks_escapes(tmp_path: Path, statement: str, header: str, expected: str) -> None:
    outside = tmp_path / "escape.txt"
    outcome = render(tmp_path, statement, header=header.format(outside=outside))
    assert outcome.failure is FailureKind.ERROR, outcome.log
    assert "blocked by the render sandbox" in outcome.error
    assert expected in outcome.error
    assert not outside.exists()
    assert not (tmp_path / "work" / "escape.txt").exists()


@pytest.mark.render
def test_reads_outside_the_allow_list_fail(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("planted-secret")
    outcome = render(
        tmp_path,
        f"""
        fonts = len(list(Path("/usr/share/fonts").rglob("*")))
        seen = [Path(name).exists() for name in ("{secret}", "/etc/os-release", "/root/.bashrc", "/var/log")]
        self.play(FadeIn(Text(f"{{fonts > 0}} {{seen}}")), run_time=0.2)
        Path(tempfile.gettempdir(), "seen.txt").write_text(f"{{fonts > 0}} {{seen}}")
        """,
        header="import tempfile\nfrom pathlib import Path",
    )
    assert outcome.ok, outcome.error
    assert (tmp_path / "work" / "tmp" / "seen.txt").read_text() == "True [False, False, False, False]"


@pytest.mark.render
def test_job_ids_that_look_like_tex_options_render_latex(tmp_path: Path) -> None:
    workdir = tmp_path / "write18-and-shell-escape"
    code = write_scene(tmp_path, 'self.play(Write(MathTex(r"a^2+b^2=c^2")), run_time=0.3)')
    outcome = asyncio.run(render_scene(code, "Demo", Quality.LOW, workdir, LIMITS))
    assert outcome.ok, outcome.error


def test_allowed_reads_under_tmp_stay_visible_over_the_renders_own_tmp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A checkout or venv under /tmp (a CI clone, a pip cache) is still readable inside the sandbox."""
    shared = tmp_path / "checkout"
    shared.mkdir(mode=0o755)
    (shared / "data.txt").write_text("visible\n")
    (shared / "data.txt").chmod(0o644)
    assert str(shared).startswith("/tmp/"), "pytest's tmp_path should lie under /tmp"
    monkeypatch.setattr(isolation, "SYSTEM_READS", (*isolation.SYSTEM_READS, str(shared)))
    workdir = tmp_path / "work"
    (workdir / "tmp").mkdir(parents=True)
    code = tmp_path / "read.py"
    code.write_text(f"print(open({str(shared / 'data.txt')!r}).read().strip())\n")
    argv = [sys.executable, "-I", str(isolation.INSIDE_CODE_DIR / code.name)]
    launch = isolation.bwrap_launch(argv, code, workdir, range(isolation.PROBE_UID, isolation.PROBE_UID + 1))
    result = subprocess.run(launch.argv, env=launch.env, capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout.strip()) == (0, "visible"), result.stderr
