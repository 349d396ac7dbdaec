"""The command line's bad-input behaviour: one line on stderr, non-zero exit, nothing created."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_runs import cli_env, run_cli
from fake_llm import FakeLLM


@pytest.mark.parametrize(
    ("args", "code", "expected"),
    [
        (
            ["generate", "x" * 501, "--models-default", "openai/m"],
            1,
            "TOPIC: String should have at most 500 characters",
        ),
        (["generate", "A topic", "--quality", "ultra"], 2, "Invalid value for '--quality'"),
        (
            ["generate", "A topic", "--max-scenes", "0", "--models-default", "openai/m"],
            1,
            "--max-scenes: Input should be greater than or equal to 1",
        ),
        (["generate"], 2, "Missing argument 'TOPIC'"),
        (["resume", "no-such-job"], 1, "no job 'no-such-job'"),
        (["generate", "A topic", "--job-id", "Bad_ID", "--models-default", "openai/m"], 1, "invalid job id"),
        (
            ["generate", "A topic", "--language", "sw", "--models-default", "openai/m"],
            1,
            "'sw' cannot be spoken",
        ),
        (
            [
                "generate",
                "A topic",
                "--language",
                "sw",
                "--voice-backend",
                "espeak",
                "--models-default",
                "openai/m",
            ],
            1,
            "--language: language 'sw' cannot be spoken by espeak",
        ),
        (["generate", "A topic", "--language", "not a tag", "--models-default", "openai/m"], 1, "--language"),
    ],
)
def test_bad_input_is_one_line_and_creates_nothing(
    args: list[str], code: int, expected: str, tmp_path: Path
) -> None:
    result = run_cli(*args, env=cli_env(OUTPUT_DIR=str(tmp_path), OPENAI_API_KEY="unused"))
    assert result.returncode == code
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and expected in lines[0], result.stderr
    assert list(tmp_path.iterdir()) == []


def test_unspeakable_language_fails_before_any_llm_call(fake_llm: FakeLLM, tmp_path: Path) -> None:
    result = run_cli("generate", "A topic", "--language", "sw-KE", "--out", str(tmp_path))
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "language 'sw-KE' cannot be spoken by espeak" in result.stderr
    assert fake_llm.requests == [] and list(tmp_path.iterdir()) == []


def test_missing_api_key_names_the_variable(tmp_path: Path) -> None:
    env = {
        k: v
        for k, v in cli_env(OUTPUT_DIR=str(tmp_path)).items()
        if k not in ("GEMINI_API_KEY", "GOOGLE_API_KEY")
    }
    result = run_cli("generate", "A topic", "--models-default", "gemini/gemini-2.5-pro", env=env)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "GEMINI_API_KEY" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_bad_setting_in_the_environment_is_named(tmp_path: Path) -> None:
    result = run_cli("generate", "A topic", env=cli_env(OUTPUT_DIR=str(tmp_path), MAX_SCENE_CONCURRENCY="0"))
    assert result.returncode == 1
    assert "MAX_SCENE_CONCURRENCY" in result.stderr and result.stderr.count("\n") == 1


def test_operator_lease_timing_that_could_let_two_leaders_overlap_is_refused() -> None:
    timing = {"LEASE_DURATION_SECONDS": "5", "LEASE_RENEW_DEADLINE_SECONDS": "10"}
    result = run_cli("operator", env=cli_env(**timing), timeout=60)
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert "LEASE_DURATION_SECONDS must exceed LEASE_RENEW_DEADLINE_SECONDS" in result.stderr


def test_operator_watches_exact_namespaces_only() -> None:
    result = run_cli("operator", "--namespace", "team-a", "--namespace", "team-*", env=cli_env(), timeout=60)
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert "--namespace 'team-*' is not a namespace name" in result.stderr
