"""Storage backends: LocalStorage on disk, S3Storage against a real signature-checking S3 server."""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import boto3
import pytest
from s3_server import S3Server

from videojobs import storage as storage_module
from videojobs.errors import ConfigurationError, StorageError
from videojobs.settings import Settings, StorageBackend
from videojobs.storage import (
    TEMP_PREFIX,
    LocalStorage,
    S3Storage,
    Storage,
    guess_content_type,
    storage_from_settings,
)

MIB = 1024 * 1024
BAD_KEYS = [
    "",
    "/etc/passwd",
    "job\\scenes\\01.json",
    "../outside.txt",
    "job/../../outside.txt",
    "job/..",
    "job/a\x00b.txt",
    "job//plan.json",
    "job/scenes/",
    "./job/plan.json",
    f"job/{TEMP_PREFIX}plan.json",
]


@functools.cache
def offline_s3() -> S3Storage:
    """An S3Storage that is never asked to reach its (unused) endpoint."""
    session = boto3.Session(aws_access_key_id="AKEXAMPLE", aws_secret_access_key="x", region_name="us-east-1")
    return S3Storage("bucket", "vj", "http://127.0.0.1:9", "us-east-1", session=session)


def temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.startswith(TEMP_PREFIX)]


# --------------------------------------------------------------------------- shared rules


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("j/final/video.mp4", "video/mp4"),
        ("j/scenes/01/plan.json", "application/json"),
        ("j/final/subtitles.vtt", "text/vtt"),
        ("j/final/subtitles.srt", "application/x-subrip"),
        ("j/scenes/01/code.v2.py", "text/x-python"),
        ("j/scenes/01/render.log", "text/plain"),
        ("j/final/thumbnail.jpg", "image/jpeg"),
        ("j/final/THUMB.JPG", "image/jpeg"),
        ("j/blob", "application/octet-stream"),
    ],
)
def test_content_type_is_guessed_from_the_extension(key: str, expected: str) -> None:
    assert guess_content_type(key) == expected


@pytest.mark.parametrize("key", BAD_KEYS)
@pytest.mark.parametrize("backend", ["local", "s3"])
def test_unsafe_keys_are_rejected(key: str, backend: str, tmp_path: Path) -> None:
    store: Storage = LocalStorage(tmp_path / "root") if backend == "local" else offline_s3()
    calls = [
        lambda: store.put_bytes(key, b"x"),
        lambda: store.get_bytes(key),
        lambda: store.exists(key),
        lambda: store.download(key, tmp_path / "out"),
        lambda: store.location(key),
        lambda: store.presigned_url(key, 60),
    ]
    for call in calls:
        with pytest.raises(StorageError, match="invalid key"):
            call()
    assert not (tmp_path / "outside.txt").exists()
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("prefix", ["/abs/", "a\\b", "../", "job/../x", "a\x00", "a//b"])
def test_unsafe_prefixes_are_rejected(prefix: str, tmp_path: Path) -> None:
    for store in (LocalStorage(tmp_path), offline_s3()):
        with pytest.raises(StorageError, match="invalid prefix"):
            store.list_keys(prefix)
        with pytest.raises(StorageError, match="invalid prefix"):
            store.delete_prefix(prefix)


def test_delete_with_an_empty_prefix_is_refused(tmp_path: Path) -> None:
    local = LocalStorage(tmp_path)
    local.put_bytes("job/a.txt", b"a")
    for store in (local, offline_s3()):
        with pytest.raises(StorageError, match="empty prefix"):
            store.delete_prefix("")
    assert local.exists("job/a.txt")


def test_storage_from_settings(tmp_path: Path) -> None:
    local = storage_from_settings(Settings(_env_file=None, output_dir=tmp_path / "out"))
    assert isinstance(local, LocalStorage)
    assert local.root == (tmp_path / "out").resolve()

    with pytest.raises(ConfigurationError, match="S3_BUCKET"):
        storage_from_settings(Settings(_env_file=None, storage_backend=StorageBackend.S3))

    with pytest.raises(ConfigurationError, match="S3_PREFIX"):
        S3Storage("media", "video/../jobs")

    s3 = storage_from_settings(
        Settings(
            _env_file=None,
            storage_backend=StorageBackend.S3,
            s3_bucket="media",
            s3_prefix="/videojobs/",
            s3_endpoint_url="http://127.0.0.1:9",
            s3_region="eu-west-1",
        )
    )
    assert isinstance(s3, S3Storage)
    assert s3.location("j1/final/video.mp4") == "s3://media/videojobs/j1/final/video.mp4"


# --------------------------------------------------------------------------- local


def test_local_round_trip(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path / "root")
    store.put_bytes("job1/scenes/01/plan.json", b'{"a": 1}')
    assert store.get_bytes("job1/scenes/01/plan.json") == b'{"a": 1}'
    assert store.exists("job1/scenes/01/plan.json")
    assert store.location("job1/scenes/01/plan.json") == str(tmp_path / "root/job1/scenes/01/plan.json")
    assert Path(store.location("job1/x")).is_absolute()
    assert store.presigned_url("job1/scenes/01/plan.json", 60) is None

    source = tmp_path / "video.mp4"
    source.write_bytes(os.urandom(300_000))
    store.put_file("job1/final/video.mp4", source)
    dest = tmp_path / "fresh" / "nested" / "copy.mp4"
    assert store.download("job1/final/video.mp4", dest)
    assert dest.read_bytes() == source.read_bytes()

    assert store.get_bytes("job1/missing.json") is None
    assert store.get_bytes("job1/scenes") is None  # a directory is not an object
    assert not store.exists("job1/scenes")
    assert not store.exists("nothing/here.txt")
    assert not store.download("job1/missing.json", tmp_path / "never.json")
    assert not (tmp_path / "never.json").exists()
    assert temp_files(tmp_path) == []


def test_local_overwrite_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = LocalStorage(tmp_path / "root")
    store.put_bytes("job/status.json", b"old")
    path = Path(store.location("job/status.json"))
    with path.open("rb") as reader:  # An open reader keeps seeing the complete old file.
        store.put_bytes("job/status.json", b"new content")
        assert reader.read() == b"old"
    assert store.get_bytes("job/status.json") == b"new content"

    # A write that fails halfway leaves the old content in place and no temp file behind.
    def broken_copy(*_args: object, **_kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    source = tmp_path / "big.bin"
    source.write_bytes(b"z" * 1000)
    monkeypatch.setattr(shutil, "copyfileobj", broken_copy)
    with pytest.raises(StorageError, match="No space left on device") as caught:
        store.put_file("job/status.json", source)
    assert caught.value.recoverable
    assert store.get_bytes("job/status.json") == b"new content"
    assert temp_files(tmp_path) == []
    assert store.list_keys("") == ["job/status.json"]


def test_local_list_and_delete(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path)
    keys = [
        "job1/job.json",
        "job1/scenes/01/plan.json",
        "job1/scenes/01/code.v1.py",
        "job1/scenes/02/plan.json",
        "job1/scenes/10/plan.json",
        "job10/job.json",
        "job2/job.json",
    ]
    for key in reversed(keys):
        store.put_bytes(key, key.encode())
    (tmp_path / "job1" / f"{TEMP_PREFIX}partial.tmp").write_bytes(b"in flight")

    assert store.list_keys("job1/") == sorted(keys[:5])
    assert store.list_keys("job1") == sorted(keys[:6])  # a plain string prefix, like S3
    assert store.list_keys("job1/scenes/0") == sorted(keys[1:4])
    assert store.list_keys("") == sorted(keys)
    assert store.list_keys("nope/") == []

    assert store.delete_prefix("job1/scenes/") == 4
    assert store.list_keys("job1/") == ["job1/job.json"]
    assert not (tmp_path / "job1" / "scenes").exists()  # emptied directories are removed
    assert store.delete_prefix("job1/") == 1
    assert store.delete_prefix("job1/") == 0
    assert store.list_keys("") == ["job10/job.json", "job2/job.json"]
    assert tmp_path.is_dir()


# --------------------------------------------------------------------------- S3


@pytest.fixture
def bucket(s3_server: S3Server) -> str:
    return s3_server.create_bucket()


def s3_storage(server: S3Server, bucket: str, **session_args: str) -> S3Storage:
    return S3Storage(
        bucket,
        "vj",
        server.endpoint_url,
        server.region,
        session=server.session(**session_args),
        multipart_threshold=5 * MIB,  # S3's smallest part size, so a few MB go multipart
        multipart_chunksize=5 * MIB,
    )


@pytest.mark.s3
def test_s3_bytes_round_trip(s3_server: S3Server, bucket: str) -> None:
    store = s3_storage(s3_server, bucket)
    store.put_bytes("job1/scenes/01/plan.json", b'{"a": 1}')
    assert store.get_bytes("job1/scenes/01/plan.json") == b'{"a": 1}'
    assert store.exists("job1/scenes/01/plan.json")
    assert store.location("job1/scenes/01/plan.json") == f"s3://{bucket}/vj/job1/scenes/01/plan.json"

    head = s3_server.client().head_object(Bucket=bucket, Key="vj/job1/scenes/01/plan.json")
    assert head["ContentType"] == "application/json"
    store.put_bytes("job1/notes", b"n", content_type="text/markdown")
    notes = s3_server.client().head_object(Bucket=bucket, Key="vj/job1/notes")
    assert notes["ContentType"] == "text/markdown"

    assert store.get_bytes("job1/missing.json") is None
    assert not store.exists("job1/missing.json")
    assert not store.exists("job1/scenes")  # a "directory" is not an object


@pytest.mark.s3
def test_s3_multipart_file_round_trip(s3_server: S3Server, bucket: str, tmp_path: Path) -> None:
    store = s3_storage(s3_server, bucket)
    source = tmp_path / "video.mp4"
    source.write_bytes(os.urandom(11 * MIB + 123))
    store.put_file("job1/final/video.mp4", source)

    head = s3_server.client().head_object(Bucket=bucket, Key="vj/job1/final/video.mp4")
    assert head["ContentType"] == "video/mp4"
    assert head["ContentLength"] == source.stat().st_size
    assert head["ETag"].strip('"').endswith("-3")  # uploaded in three parts

    dest = tmp_path / "down" / "video.mp4"
    assert store.download("job1/final/video.mp4", dest)
    assert hashlib.sha256(dest.read_bytes()).digest() == hashlib.sha256(source.read_bytes()).digest()
    assert not store.download("job1/final/missing.mp4", tmp_path / "none.mp4")
    assert not (tmp_path / "none.mp4").exists()
    assert temp_files(tmp_path) == []


@pytest.mark.s3
def test_s3_list_and_delete_prefix(s3_server: S3Server, bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    store = s3_storage(s3_server, bucket)
    keys = [f"job1/scenes/{i:02d}/plan.json" for i in range(1, 8)] + ["job1/job.json", "job10/job.json"]
    for key in keys:
        store.put_bytes(key, b"x")
    s3_server.client().put_object(Bucket=bucket, Key="elsewhere/job1/job.json", Body=b"not ours")

    assert store.list_keys("job1/") == sorted(keys[:8])
    assert store.list_keys("job1/scenes/0") == sorted(keys[:7])
    assert store.list_keys("") == sorted(keys)
    assert store.list_keys("nope/") == []

    calls: list[str] = []
    events = store._client.meta.events
    events.register("before-call.s3.*", lambda model, **_: calls.append(model.name))
    monkeypatch.setattr(storage_module, "LIST_PAGE_SIZE", 3)  # several ListObjectsV2 pages
    monkeypatch.setattr(storage_module, "DELETE_BATCH", 3)  # several DeleteObjects calls
    assert store.list_keys("job1/") == sorted(keys[:8])
    assert calls.count("ListObjectsV2") == 3
    assert store.delete_prefix("job1/") == 8
    assert calls.count("DeleteObjects") == 3
    assert store.list_keys("") == ["job10/job.json"]
    assert store.delete_prefix("job1/") == 0
    raw = s3_server.client().list_objects_v2(Bucket=bucket)
    assert sorted(obj["Key"] for obj in raw["Contents"]) == ["elsewhere/job1/job.json", "vj/job10/job.json"]


@pytest.mark.s3
def test_s3_presigned_url_over_http(s3_server: S3Server, bucket: str) -> None:
    store = s3_storage(s3_server, bucket)
    payload = os.urandom(4096)
    store.put_bytes("job1/final/thumbnail.jpg", payload)
    url = store.presigned_url("job1/final/thumbnail.jpg", 300)
    assert url is not None
    assert "X-Amz-Signature=" in url  # SigV4 query auth
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.read() == payload
        assert response.headers["Content-Type"] == "image/jpeg"

    with pytest.raises(StorageError, match="expiry"):
        store.presigned_url("job1/final/thumbnail.jpg", 8 * 24 * 3600)


def http_error(url: str) -> tuple[int, str]:
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(url, timeout=10)
    return caught.value.code, caught.value.read().decode(errors="replace")


@pytest.mark.s3
def test_s3_presigned_url_with_bad_signature_is_refused(s3_server: S3Server, bucket: str) -> None:
    store = s3_storage(s3_server, bucket)
    store.put_bytes("job1/final/video.mp4", b"secret video")
    url = store.presigned_url("job1/final/video.mp4", 300)
    assert url is not None

    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qs(parts.query)
    signature = query["X-Amz-Signature"][0]
    query["X-Amz-Signature"] = [("0" if signature[0] != "0" else "1") + signature[1:]]
    tampered = parts._replace(query=urllib.parse.urlencode(query, doseq=True)).geturl()
    status, body = http_error(tampered)
    assert status == 403
    assert "SignatureDoesNotMatch" in body

    other_key = url.replace("/video.mp4?", "/other.mp4?")  # a valid signature, for another object
    assert http_error(other_key)[0] == 403

    forger = s3_storage(s3_server, bucket, secret_key="not-the-secret")
    forged = forger.presigned_url("job1/final/video.mp4", 300)
    assert forged is not None
    status, body = http_error(forged)
    assert status == 403
    assert "SignatureDoesNotMatch" in body


@pytest.mark.s3
def test_s3_wrong_secret_key_is_a_storage_error(s3_server: S3Server, bucket: str, tmp_path: Path) -> None:
    good = s3_storage(s3_server, bucket)
    good.put_bytes("job1/job.json", b"{}")
    bad = s3_storage(s3_server, bucket, secret_key="not-the-secret")

    with pytest.raises(StorageError, match="SignatureDoesNotMatch") as caught:
        bad.put_bytes("job1/job.json", b"overwritten")
    assert f"s3://{bucket}/vj/job1/job.json" in caught.value.message
    assert caught.value.recoverable
    assert "AWS_SECRET_ACCESS_KEY" in caught.value.suggestion

    with pytest.raises(StorageError, match="SignatureDoesNotMatch"):
        bad.get_bytes("job1/job.json")
    with pytest.raises(StorageError, match="SignatureDoesNotMatch"):
        bad.list_keys("job1/")
    with pytest.raises(StorageError, match="SignatureDoesNotMatch"):
        bad.delete_prefix("job1/")
    with pytest.raises(StorageError, match="SignatureDoesNotMatch"):
        bad.download("job1/job.json", tmp_path / "x.json")
    source = tmp_path / "small.log"
    source.write_text("log")
    with pytest.raises(StorageError, match="SignatureDoesNotMatch"):
        bad.put_file("job1/render.log", source)
    with pytest.raises(StorageError, match="403"):  # HEAD errors carry only the status
        bad.exists("job1/job.json")
    assert good.get_bytes("job1/job.json") == b"{}"
    assert good.list_keys("job1/") == ["job1/job.json"]


@pytest.mark.s3
def test_s3_unknown_access_key_is_an_error_not_a_missing_object(s3_server: S3Server, bucket: str) -> None:
    good = s3_storage(s3_server, bucket)
    good.put_bytes("job1/job.json", b"{}")
    stranger = s3_storage(s3_server, bucket, access_key="AKIDONOTEXIST", secret_key="whatever")
    with pytest.raises(StorageError, match=r"s3://.*/vj/job1/job\.json"):
        stranger.get_bytes("job1/job.json")
    with pytest.raises(StorageError):
        stranger.put_bytes("job1/job.json", b"x")


@pytest.mark.s3
def test_s3_missing_bucket_is_named(s3_server: S3Server) -> None:
    store = s3_storage(s3_server, "no-such-bucket-here")
    with pytest.raises(StorageError, match="NoSuchBucket") as caught:
        store.put_bytes("job1/job.json", b"{}")
    assert "no-such-bucket-here" in caught.value.message
    assert "S3_BUCKET" in caught.value.suggestion
    with pytest.raises(StorageError, match="NoSuchBucket"):
        store.get_bytes("job1/job.json")  # not None: a missing bucket is not a missing key
    with pytest.raises(StorageError, match="NoSuchBucket"):
        store.list_keys("job1/")


@pytest.mark.s3
def test_s3_from_settings_uses_the_environment_credentials(
    s3_server: S3Server, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    for name, value in s3_server.env(bucket).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("S3_PREFIX", "from-env")

    store = storage_from_settings(Settings(_env_file=None))
    assert isinstance(store, S3Storage)
    store.put_bytes("job9/job.json", b"{}")
    assert store.list_keys("job9/") == ["job9/job.json"]
    assert store.location("job9/job.json") == f"s3://{bucket}/from-env/job9/job.json"

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
    with pytest.raises(StorageError, match="SignatureDoesNotMatch"):
        storage_from_settings(Settings(_env_file=None)).get_bytes("job9/job.json")
