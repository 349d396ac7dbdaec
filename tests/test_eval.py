"""`videojobs eval` through the real parts: two topics, the fake LLM over HTTP, real renders."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_runs import cli_env, read_json, run_cli
from fake_llm import FakeLLM

from videojobs_runner.evaluate import load_topics

TWO_TOPICS = """topics:
  - topic: Shapes and formulas
    subject: math
    level: easy
  - topic: A summary that fails
    subject: computer science
    level: hard
    description: The second job's last scene never renders.
"""


def test_the_shipped_topic_set_covers_four_subjects_easy_to_hard() -> None:
    topics = load_topics(Path(__file__).parents[1] / "examples/eval-topics.yaml")
    subjects = {t.subject for t in topics}
    assert subjects == {"math", "physics", "chemistry", "computer science"}
    for subject in subjects:
        assert {t.level.value for t in topics if t.subject == subject} == {"easy", "medium", "hard"}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("topics: [", "is not valid YAML"),
        ("topics: []", "topics: List should have at least 1 item"),
        (
            "topics:\n  - topic: X\n    level: impossible",
            "topics.0.level: Input should be 'easy', 'medium' or 'hard'",
        ),
        ("- just a list", "is not a topic set: the file: Input should be a valid dictionary"),
    ],
)
def test_a_bad_topics_file_is_one_error_line(tmp_path: Path, content: str, message: str) -> None:
    topics = tmp_path / "topics.yaml"
    topics.write_text(content)
    result = run_cli("eval", str(topics), "--model", "openai/gpt-4o-mini", env=cli_env(OPENAI_API_KEY="x"))
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and message in line, line


@pytest.mark.render
@pytest.mark.llm_fixture("eval-two")
def test_eval_reports_each_topic_and_the_total(fake_llm: FakeLLM, tmp_path: Path) -> None:
    topics = tmp_path / "topics.yaml"
    topics.write_text(TWO_TOPICS)
    report_path = tmp_path / "report.json"
    env = cli_env(MAX_FIX_ATTEMPTS="1")
    result = run_cli(
        "eval",
        str(topics),
        "--model",
        "openai/gpt-4o-mini",
        "--out",
        str(tmp_path / "jobs"),
        "--json",
        str(report_path),
        env=env,
    )
    assert result.returncode == 0, result.stderr

    report = read_json(report_path)
    assert report["models"]["scene"] == "openai/gpt-4o-mini" and report["quality"] == "low"
    first, second = report["results"]
    assert (first["topic"], first["produced"], first["error"]) == ("Shapes and formulas", True, None)
    assert first["fix_attempts"] == 2  # scene 2's unsafe code and scene 3's crash, one fix each
    metadata = read_json(tmp_path / "jobs" / first["job_id"] / "metadata.json")
    assert first["layout_violations_left"] == 0
    assert first["narration_drift_seconds"] == metadata["narration"]["max_drift_seconds"] < 0.5  # espeak
    usage = metadata["usage"]
    assert first["tokens"] == usage["total_tokens"] > 0
    assert first["cost_usd"] == usage["cost_usd"]
    assert first["wall_seconds"] > 0
    assert second["produced"] is False and second["error"].startswith("rendering: 1 of 3 scenes failed")
    assert second["fix_attempts"] == 2 and second["layout_violations_left"] is None
    totals = report["totals"]
    assert (totals["topics"], totals["produced"], totals["success_rate"]) == (2, 1, 0.5)
    assert totals["tokens"] == first["tokens"] + second["tokens"] and totals["fix_attempts"] == 4
    assert totals["max_narration_drift_seconds"] == first["narration_drift_seconds"]

    table = result.stdout
    assert "Shapes and formulas" in table and "A summary that fails" in table
    assert "total (2 topics)" in table and "1/2 (50%)" in table
    assert "[1/2] Shapes and formulas: produced in " in result.stderr
    assert "[2/2] A summary that fails: not produced (rendering: " in result.stderr
