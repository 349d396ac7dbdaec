"""The same pipeline storing to a real, signature-checking S3 server on 127.0.0.1 through boto3."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest
from cli_runs import cli_env, ffprobe, run_cli
from fake_llm import FakeLLM
from s3_server import S3Server

pytestmark = [pytest.mark.render, pytest.mark.s3]


def test_generate_stores_every_artifact_in_s3_and_presigned_url_serves_the_video(
    fake_llm: FakeLLM, s3_server: S3Server, tmp_path: Path
) -> None:
    bucket = s3_server.create_bucket()
    env = cli_env(
        **s3_server.env(bucket), WORK_DIR=str(tmp_path / "work"), OUTPUT_DIR=str(tmp_path / "unused")
    )
    result = run_cli("generate", "Test topic", "--job-id", "s3-e2e", env=env)
    assert result.returncode == 0, result.stderr
    assert f"s3://{bucket}/videojobs/s3-e2e/video.mp4" in result.stderr
    assert not (tmp_path / "unused").exists()  # nothing went to local storage

    s3 = s3_server.client()
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="videojobs/s3-e2e/")["Contents"]}
    for name in (
        "job.json",
        "status.json",
        "outline.json",
        "video.mp4",
        "thumbnail.jpg",
        "metadata.json",
        "subtitles.srt",
        "subtitles.vtt",
        "scenes/01/plan.json",
        "scenes/01/code_v1.py",
        "scenes/01/scene.mp4",
        "scenes/01/thumbnail.jpg",
        "scenes/03/code_v1.py",
        "scenes/03/code_v1.error.txt",
        "scenes/03/code_v2.py",
    ):
        assert f"videojobs/s3-e2e/{name}" in keys, name
    head = s3.head_object(Bucket=bucket, Key="videojobs/s3-e2e/video.mp4")
    assert head["ContentType"] == "video/mp4"
    poster = s3.head_object(Bucket=bucket, Key="videojobs/s3-e2e/scenes/01/thumbnail.jpg")
    assert poster["ContentType"] == "image/jpeg" and poster["ContentLength"] > 0
    status = json.loads(s3.get_object(Bucket=bucket, Key="videojobs/s3-e2e/status.json")["Body"].read())
    assert status["phase"] == "Succeeded" and status["result"]["video"].startswith("s3://")

    url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "videojobs/s3-e2e/video.mp4"}, ExpiresIn=300
    )
    downloaded = tmp_path / "downloaded.mp4"
    with urllib.request.urlopen(url, timeout=30) as response:
        downloaded.write_bytes(response.read())
    assert downloaded.stat().st_size == head["ContentLength"]
    assert any(s["codec_name"] == "h264" for s in ffprobe(downloaded)["streams"])


def test_wrong_secret_key_is_a_one_line_storage_error(s3_server: S3Server, tmp_path: Path) -> None:
    bucket = s3_server.create_bucket()
    env = cli_env(
        **(s3_server.env(bucket) | {"AWS_SECRET_ACCESS_KEY": "not-the-secret"}), WORK_DIR=str(tmp_path)
    )
    result = run_cli(
        "generate", "Test topic", "--models-default", "openai/gpt-4o-mini", env=env | {"OPENAI_API_KEY": "x"}
    )
    assert result.returncode == 1
    (line,) = [line for line in result.stderr.splitlines() if line.strip()]
    assert line.startswith("error:") and "SignatureDoesNotMatch" in line
