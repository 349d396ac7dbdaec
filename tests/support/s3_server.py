"""A real S3 server for tests: versitygw (posix backend) on 127.0.0.1, which verifies SigV4 signatures.

The binary is built from the Go module proxy by `hack/build-s3-server` (pinned version, cached under
`${XDG_CACHE_HOME:-~/.cache}/videojobs/bin`); the fixture runs that script, which returns at once when
the binary is already there, so a missing binary is built rather than the S3 tests being skipped.
Set VIDEOJOBS_S3_SERVER_BIN to use another versitygw binary.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO_ROOT / "hack" / "build-s3-server"
HEALTH_PATH = "/health"
START_TIMEOUT_SECONDS = 30.0
BUILD_TIMEOUT_SECONDS = 900


@dataclass
class S3Server:
    """A running server: where it listens and the root credentials it accepts."""

    endpoint_url: str
    access_key: str
    secret_key: str
    region: str
    root: Path
    log_path: Path

    def session(self, *, access_key: str | None = None, secret_key: str | None = None) -> boto3.Session:
        """A boto3 session with the server's credentials (or the given, e.g. wrong, ones)."""
        return boto3.Session(
            aws_access_key_id=access_key or self.access_key,
            aws_secret_access_key=secret_key or self.secret_key,
            region_name=self.region,
        )

    def client(self, *, access_key: str | None = None, secret_key: str | None = None) -> Any:
        """A raw boto3 S3 client for the server (path-style, SigV4)."""
        return self.session(access_key=access_key, secret_key=secret_key).client(
            "s3",
            endpoint_url=self.endpoint_url,
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
        )

    def create_bucket(self, name: str | None = None) -> str:
        """Create a bucket (a fresh unique name when none is given) and return its name."""
        bucket = name or f"test-{secrets.token_hex(6)}"
        self.client().create_bucket(Bucket=bucket)
        return bucket

    def env(self, bucket: str) -> dict[str, str]:
        """Environment variables pointing the service at this server (for subprocess tests)."""
        return {
            "STORAGE_BACKEND": "s3",
            "S3_BUCKET": bucket,
            "S3_ENDPOINT_URL": self.endpoint_url,
            "S3_REGION": self.region,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
        }


def server_binary() -> Path:
    """The versitygw binary: VIDEOJOBS_S3_SERVER_BIN, else whatever hack/build-s3-server builds or finds."""
    override = os.environ.get("VIDEOJOBS_S3_SERVER_BIN")
    if override:
        path = Path(override)
        if not (path.is_file() and os.access(path, os.X_OK)):
            pytest.fail(f"VIDEOJOBS_S3_SERVER_BIN={override} is not an executable file", pytrace=False)
        return path
    try:
        done = subprocess.run(
            [str(BUILD_SCRIPT)],
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.fail(f"could not run {BUILD_SCRIPT}: {exc}", pytrace=False)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        pytest.fail(
            f"{BUILD_SCRIPT} failed (exit {done.returncode}); the S3 tests need its server binary.\n"
            f"{done.stderr[-4000:]}",
            pytrace=False,
        )
    return Path(lines[-1])


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _supports_xattrs(directory: Path) -> bool:
    probe = directory / ".xattr-probe"
    probe.touch()
    try:
        os.setxattr(probe, "user.videojobs", b"1")
    except OSError as exc:
        if exc.errno in {errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM}:
            return False
        raise
    finally:
        probe.unlink()
    return True


def _log_tail(path: Path) -> str:
    with contextlib.suppress(OSError):
        return path.read_text(errors="replace")[-4000:]
    return ""


def _wait_ready(process: subprocess.Popen[bytes], url: str, log_path: Path) -> bool:
    """True once the health endpoint answers; False if the process died (e.g. the port was taken)."""
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(url + HEALTH_PATH, timeout=1) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.05)
    process.kill()
    pytest.fail(f"S3 server did not become ready in {START_TIMEOUT_SECONDS}s:\n{_log_tail(log_path)}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@contextlib.contextmanager
def running_s3_server(workdir: Path, again: S3Server | None = None) -> Iterator[S3Server]:
    """Start versitygw on a free 127.0.0.1 port with fresh random root keys; stop it on exit.

    `again`: a server that ran on `workdir` before and was stopped: start it again on its port, with its
    keys and its data (what a client of it sees as an outage that ended).
    """
    binary = server_binary()
    root = workdir / "data"
    root.mkdir(parents=True, exist_ok=True)
    backend_args = [str(root)]
    if not _supports_xattrs(root):  # e.g. tmpfs on older kernels: keep object metadata in a sidecar dir.
        sidecar = workdir / "meta"
        sidecar.mkdir(exist_ok=True)
        backend_args = ["--sidecar", str(sidecar), str(root)]
    access_key = again.access_key if again else "VJTEST" + secrets.token_hex(7).upper()
    secret_key = again.secret_key if again else secrets.token_urlsafe(30)
    region = again.region if again else "us-east-1"
    log_path = workdir / "versitygw.log"
    # Credentials travel in the environment, not argv, so they do not show up in `ps`.
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", str(workdir)),
        "ROOT_ACCESS_KEY_ID": access_key,
        "ROOT_SECRET_ACCESS_KEY": secret_key,
    }
    for _attempt in range(3):
        endpoint = again.endpoint_url if again else f"http://127.0.0.1:{_free_port()}"
        port = int(endpoint.rsplit(":", 1)[1])
        command = [
            str(binary),
            "--port",
            f"127.0.0.1:{port}",
            "--region",
            region,
            "--health",
            HEALTH_PATH,
            "--quiet",
            "posix",
            *backend_args,
        ]
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=workdir
            )
        try:
            if _wait_ready(process, endpoint, log_path):
                yield S3Server(endpoint, access_key, secret_key, region, root, log_path)
                return
        finally:
            _stop(process)
    pytest.fail(f"S3 server would not start (3 attempts):\n{_log_tail(log_path)}")


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A signature-checking S3 server for the whole test session."""
    with running_s3_server(tmp_path_factory.mktemp("s3-server")) as server:
        yield server
