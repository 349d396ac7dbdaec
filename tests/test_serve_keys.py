"""`videojobs serve` with no keys: its own key on loopback (owner-only, reused), a refusal elsewhere."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx
import pytest
from cli_runs import cli_env, run_cli, serve

from videojobs_api.local_key import curl_example, is_loopback

NOT_KEYS = ("VIDEOJOBS_API_KEYS", "VIDEOJOBS_API_KEYS_FILE", "VIDEOJOBS_API_LOCAL_KEY_FILE")


def keyless_env(tmp_path: Path) -> dict[str, str]:
    """No keys configured; the user's state and home in tmp_path; jobs queue (no worker runs)."""
    env = cli_env(
        OUTPUT_DIR=str(tmp_path / "out"),
        HOME=str(tmp_path / "home"),
        XDG_STATE_HOME=str(tmp_path / "state"),
        VIDEOJOBS_API_LOCAL_WORKERS="0",
        COLUMNS="40",  # the key and the curl line are printed unwrapped all the same
    )
    return {name: value for name, value in env.items() if name not in NOT_KEYS}


def test_on_loopback_it_makes_a_key_stores_it_owner_only_prints_a_curl_line_and_reuses_it(
    tmp_path: Path,
) -> None:
    env = keyless_env(tmp_path)
    key_file = tmp_path / "state" / "videojobs" / "api-key"
    with serve(env, tmp_path / "serve.log") as served:
        assert f"made its own, stored owner-only in {key_file}" in served.lines[0]
        key = served.after("No API keys are configured")
        curl = served.after("Create a video:")
        assert served.after("Or open the web app and sign in with the key:") == f"{served.url}/"
        assert key_file.read_text() == f"{key}\n" and len(key) >= 32
        assert key_file.stat().st_mode & 0o777 == 0o600
        assert key_file.parent.stat().st_mode & 0o777 == 0o700
        assert [path.name for path in key_file.parent.iterdir()] == ["api-key"]  # no temporary left

        pasted = subprocess.run(["bash", "-c", curl], capture_output=True, text=True, check=True, timeout=30)
        job = json.loads(pasted.stdout)
        assert job["phase"] == "Queued" and job["owner"] == "local"
        assert job["request"]["topic"] == "The Pythagorean theorem"

        assert httpx.get(f"{served.url}/v1/videos/jobs").status_code == 401
        wrong = httpx.get(f"{served.url}/v1/videos/jobs", headers={"Authorization": f"Bearer {key}x"})
        assert wrong.status_code == 401
        jobs = httpx.get(f"{served.url}/v1/videos/jobs", headers={"Authorization": f"Bearer {key}"})
        assert jobs.status_code == 200 and [j["id"] for j in jobs.json()["data"]] == [job["id"]]

    with serve(env, tmp_path / "serve-again.log") as again:
        assert f"uses its own, from {key_file}" in again.lines[0]
        assert again.after("No API keys are configured") == key
        jobs = httpx.get(f"{again.url}/v1/videos/jobs", headers={"Authorization": f"Bearer {key}"})
        assert [j["id"] for j in jobs.json()["data"]] == [job["id"]]


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.1"])
def test_bound_elsewhere_without_keys_it_refuses_in_one_line(tmp_path: Path, host: str) -> None:
    result = run_cli("serve", "--host", host, env=keyless_env(tmp_path), timeout=60)
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: no API keys") and "VIDEOJOBS_API_KEYS" in line and "loopback" in line
    assert not (tmp_path / "state").exists()


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_a_key_file_others_can_read_is_refused(tmp_path: Path, mode: int) -> None:
    key_file = tmp_path / "state" / "videojobs" / "api-key"
    key_file.parent.mkdir(parents=True)
    key_file.write_text("a-key-others-could-read-0123\n")
    key_file.chmod(mode)
    result = run_cli("serve", "--port", "1", env=keyless_env(tmp_path), timeout=60)
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert f"the API key file {key_file} is not readable by its owner alone" in line and "chmod 600" in line
    assert "a-key-others-could-read" not in result.stderr


def test_the_key_file_can_be_placed_and_must_hold_a_key(tmp_path: Path) -> None:
    key_file = tmp_path / "elsewhere" / "key"
    env = keyless_env(tmp_path) | {"VIDEOJOBS_API_LOCAL_KEY_FILE": str(key_file)}
    key_file.parent.mkdir()
    key_file.write_text("short\n")
    key_file.chmod(0o600)
    result = run_cli("serve", "--port", "1", env=env, timeout=60)
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert f"the API key file {key_file} holds no key" in result.stderr
    key_file.unlink()
    with serve(env, tmp_path / "serve.log") as served:
        assert key_file.read_text() == f"{served.after('No API keys are configured')}\n"
    assert not (tmp_path / "state").exists()


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.0.2.1", False),
        ("127.0.0.1.example.invalid", False),
        ("", False),
    ],
)
def test_loopback_is_decided_by_address(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_the_curl_line_brackets_an_ipv6_host() -> None:
    line = curl_example("::1", 8000, "k" * 43)
    assert "http://[::1]:8000/v1/videos/generate" in line and f"'Authorization: Bearer {'k' * 43}'" in line
