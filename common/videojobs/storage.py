"""Where job artifacts live: a local directory or an S3 bucket, behind one small interface."""

from __future__ import annotations

import contextlib
import mimetypes
import os
import re
import shutil
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING

import boto3
from boto3.exceptions import Boto3Error
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from videojobs.errors import ConfigurationError, StorageError
from videojobs.settings import Settings, StorageBackend

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client
    from mypy_boto3_s3.type_defs import ObjectIdentifierTypeDef

MIB = 1024 * 1024
MAX_KEY_BYTES = 1024
"""S3's limit on a key's UTF-8 length (the S3 prefix counts too)."""
MAX_PRESIGN_SECONDS = 7 * 24 * 3600
"""SigV4 presigned URLs cannot live longer than a week."""
DELETE_BATCH = 1000
"""The most keys one DeleteObjects call accepts."""
LIST_PAGE_SIZE = 1000
_EPOCH = datetime.fromtimestamp(0, UTC)
"""Keys asked for per ListObjectsV2 call (S3 returns at most 1000)."""
TEMP_PREFIX = ".vjtmp-"
"""Name prefix of LocalStorage's in-flight temp files; never listed, never a valid key's last segment."""

_CONTENT_TYPES = {
    ".mp4": "video/mp4",
    ".json": "application/json",
    ".vtt": "text/vtt",
    ".srt": "application/x-subrip",
    ".py": "text/x-python",
    ".log": "text/plain",
    ".txt": "text/plain",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".wav": "audio/wav",
    ".mp3": "audio/mpeg",
}
"""Types we must get right whatever the host's mimetypes database says."""
DEFAULT_CONTENT_TYPE = "application/octet-stream"


def guess_content_type(key: str) -> str:
    """The MIME type for a key, from its extension (application/octet-stream when unknown)."""
    suffix = Path(key).suffix.lower()
    if suffix in _CONTENT_TYPES:
        return _CONTENT_TYPES[suffix]
    guessed, _ = mimetypes.guess_type(key, strict=False)
    return guessed or DEFAULT_CONTENT_TYPE


def _check_path(value: str, what: str) -> None:
    """The rules keys and prefixes share: relative POSIX paths with no tricks in them."""
    if "\x00" in value:
        raise StorageError(f"invalid {what} {value!r}: contains a NUL character")
    if "\\" in value:
        raise StorageError(f"invalid {what} {value!r}: use '/' as the separator, not backslashes")
    if value.startswith("/"):
        raise StorageError(f"invalid {what} {value!r}: must be relative, not start with '/'")
    if len(value.encode("utf-8")) > MAX_KEY_BYTES:
        raise StorageError(f"invalid {what} {value[:60]!r}...: longer than {MAX_KEY_BYTES} bytes")
    for segment in value.split("/"):
        if segment == "..":
            raise StorageError(f"invalid {what} {value!r}: '..' segments are not allowed")
        if segment == ".":
            raise StorageError(f"invalid {what} {value!r}: '.' segments are not allowed")


def validate_key(key: str) -> str:
    """Return key unchanged if it is a safe relative POSIX path naming a file; else raise StorageError."""
    if not key:
        raise StorageError("invalid key '': must not be empty")
    _check_path(key, "key")
    segments = key.split("/")
    if "" in segments:
        raise StorageError(f"invalid key {key!r}: empty path segments ('//' or a trailing '/')")
    if segments[-1].startswith(TEMP_PREFIX):
        raise StorageError(f"invalid key {key!r}: names starting with {TEMP_PREFIX!r} are reserved")
    return key


def validate_prefix(prefix: str) -> str:
    """Return prefix unchanged if valid: like a key, but may be empty or end with '/'."""
    if not prefix:
        return prefix
    _check_path(prefix, "prefix")
    if "" in prefix.split("/")[:-1]:
        raise StorageError(f"invalid prefix {prefix!r}: empty path segments ('//')")
    return prefix


@dataclass(frozen=True)
class StoredObject:
    """One stored object: its key, size and when it was last written."""

    key: str
    size: int
    modified: datetime


class Storage(ABC):
    """Artifact store addressed by relative POSIX keys such as "<job_id>/scenes/01/plan.json"."""

    @abstractmethod
    def put_file(self, key: str, path: Path, content_type: str | None = None) -> None:
        """Store the file at path under key, replacing any previous object."""

    @abstractmethod
    def put_bytes(self, key: str, data: bytes, content_type: str | None = None) -> None:
        """Store data under key, replacing any previous object."""

    @abstractmethod
    def get_bytes(self, key: str) -> bytes | None:
        """The object's content, or None when there is no such key."""

    @abstractmethod
    def download(self, key: str, dest: Path) -> bool:
        """Copy the object to dest (atomically, creating parent dirs); False when there is no such key."""

    @abstractmethod
    def exists(self, key: str) -> bool:
        """Whether an object is stored under key."""

    @abstractmethod
    def list_keys(self, prefix: str) -> list[str]:
        """Every key starting with prefix (a plain string prefix, recursive), sorted."""

    @abstractmethod
    def list_objects(self, prefix: str) -> list[StoredObject]:
        """Every object whose key starts with prefix, with its size and time, sorted by key."""

    @abstractmethod
    def delete_keys(self, keys: list[str]) -> int:
        """Delete these keys (missing ones are no error); return how many were asked for."""

    def delete_prefix(self, prefix: str) -> int:
        """Delete every key starting with prefix (which must not be empty); return how many were deleted."""
        return self.delete_keys(self.list_keys(_require_delete_prefix(prefix)))

    @abstractmethod
    def location(self, key: str) -> str:
        """Where the object lives, for people and logs: a filesystem path or an s3:// URI."""

    @abstractmethod
    def presigned_url(
        self, key: str, expires_seconds: int, content_disposition: str | None = None
    ) -> str | None:
        """A time-limited HTTP GET URL for the object, or None when the backend has no such thing.

        `content_disposition` is the Content-Disposition its response carries (e.g. an attachment name).
        """


def _require_delete_prefix(prefix: str) -> str:
    validate_prefix(prefix)
    if not prefix:
        raise StorageError("refusing to delete with an empty prefix (that would delete every artifact)")
    return prefix


# --------------------------------------------------------------------------- local


@contextlib.contextmanager
def _atomic_writer(dest: Path) -> Iterator[IO[bytes]]:
    """A binary file that appears at dest, complete, only when the block succeeds."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f"{TEMP_PREFIX}{dest.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        tmp.chmod(0o644)
        tmp.replace(dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class LocalStorage(Storage):
    """Artifacts as files under a root directory; every write is atomic (temp file + os.replace)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).expanduser().resolve()

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*validate_key(key).split("/"))

    def _error(self, action: str, key: str, exc: OSError) -> StorageError:
        return StorageError(
            f"could not {action} {key!r} at {self.root}: {exc.strerror or exc}",
            recoverable=True,
            suggestion=f"Check that {self.root} is writable and has free space, then resume.",
        )

    def put_file(self, key: str, path: Path, content_type: str | None = None) -> None:
        dest = self._path(key)
        try:
            with Path(path).open("rb") as src, _atomic_writer(dest) as out:
                shutil.copyfileobj(src, out, 4 * MIB)
        except OSError as exc:
            raise self._error(f"store {path} as", key, exc) from exc

    def put_bytes(self, key: str, data: bytes, content_type: str | None = None) -> None:
        dest = self._path(key)
        try:
            with _atomic_writer(dest) as out:
                out.write(data)
        except OSError as exc:
            raise self._error("write", key, exc) from exc

    def get_bytes(self, key: str) -> bytes | None:
        path = self._path(key)
        try:
            return path.read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
        except OSError as exc:
            raise self._error("read", key, exc) from exc

    def download(self, key: str, dest: Path) -> bool:
        path = self._path(key)
        try:
            src = path.open("rb")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return False
        except OSError as exc:
            raise self._error("read", key, exc) from exc
        try:
            with src, _atomic_writer(Path(dest)) as out:
                shutil.copyfileobj(src, out, 4 * MIB)
        except OSError as exc:
            raise self._error(f"copy to {dest}", key, exc) from exc
        return True

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def _walk(self, prefix: str) -> list[tuple[str, Path]]:
        validate_prefix(prefix)
        base_dir, _, _ = prefix.rpartition("/")
        start = self.root.joinpath(*base_dir.split("/")) if base_dir else self.root
        found: list[tuple[str, Path]] = []
        if not start.is_dir():
            return found
        for dirpath, _dirnames, filenames in os.walk(start):
            directory = Path(dirpath)
            rel_dir = directory.relative_to(self.root).as_posix()
            for name in filenames:
                if name.startswith(TEMP_PREFIX):
                    continue
                key = name if rel_dir == "." else f"{rel_dir}/{name}"
                if key.startswith(prefix) and (directory / name).is_file():
                    found.append((key, directory / name))
        found.sort()
        return found

    def list_keys(self, prefix: str) -> list[str]:
        try:
            return [key for key, _ in self._walk(prefix)]
        except OSError as exc:
            raise self._error("list", prefix, exc) from exc

    def list_objects(self, prefix: str) -> list[StoredObject]:
        try:
            found = []
            for key, path in self._walk(prefix):
                with contextlib.suppress(FileNotFoundError):  # deleted meanwhile
                    info = path.stat()
                    found.append(StoredObject(key, info.st_size, datetime.fromtimestamp(info.st_mtime, UTC)))
            return found
        except OSError as exc:
            raise self._error("list", prefix, exc) from exc

    def delete_keys(self, keys: list[str]) -> int:
        dirs: set[Path] = set()
        for key in keys:
            path = self._path(key)
            try:
                path.unlink(missing_ok=True)
            except OSError as exc:
                raise self._error("delete", key, exc) from exc
            dirs.update(p for p in path.parents if p != self.root and p.is_relative_to(self.root))
        # Remove directories the deletion left empty, deepest first; keep any that still hold files.
        for directory in sorted(dirs, key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):
                directory.rmdir()
        return len(keys)

    def location(self, key: str) -> str:
        return str(self._path(key))

    def presigned_url(
        self, key: str, expires_seconds: int, content_disposition: str | None = None
    ) -> str | None:
        validate_key(key)
        return None


# --------------------------------------------------------------------------- S3

_CREDENTIAL_CODES = {
    "SignatureDoesNotMatch",
    "InvalidAccessKeyId",
    "InvalidToken",
    "ExpiredToken",
    "TokenRefreshRequired",
    "NoCredentialsError",
    "PartialCredentialsError",
    "XAdminUserNotFound",
}
_MISSING_KEY_CODES = {"NoSuchKey", "404", "NotFound"}


def _client_error(exc: BaseException) -> ClientError | None:
    """The ClientError behind exc (boto3's transfer errors wrap it without chaining it as a cause)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ClientError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _error_code(exc: BaseException) -> tuple[str, str]:
    """(S3 error code, message) for any boto error; HEAD errors, which have no body, get the HTTP status."""
    client_error = _client_error(exc)
    if client_error is not None:
        error = client_error.response.get("Error", {})
        code = str(error.get("Code") or "Unknown")
        status = client_error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        message = str(error.get("Message") or "")
        if code.isdigit():  # HEAD responses carry no error document: all we know is the status.
            if code == "403" or status == 403:
                return "403 Forbidden", (
                    "access denied; a HEAD response names no cause, likely SignatureDoesNotMatch, "
                    "InvalidAccessKeyId or AccessDenied"
                )
            return f"HTTP {code}", message
        return code, message
    found = re.search(r"\(([A-Za-z][A-Za-z0-9.]*)\)", str(exc))
    if isinstance(exc, Boto3Error) and found:
        return found.group(1), str(exc)
    return type(exc).__name__, str(exc)


def _suggestion(code: str, bucket: str) -> str:
    if code in _CREDENTIAL_CODES or code.startswith("403"):
        return (
            "Check the S3 credentials (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or the role), that they "
            f"may access bucket {bucket!r}, and that S3_REGION / S3_ENDPOINT_URL are right, then resume."
        )
    if code == "NoSuchBucket":
        return f"Create bucket {bucket!r} or fix S3_BUCKET, then resume."
    if code in {
        "EndpointConnectionError",
        "ConnectTimeoutError",
        "ReadTimeoutError",
        "ConnectionClosedError",
    }:
        return "Check that the S3 endpoint (S3_ENDPOINT_URL) is reachable, then resume."
    return StorageError.default_suggestion


class S3Storage(Storage):
    """Artifacts as objects under s3://bucket/prefix/; credentials come from the standard boto3 chain."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        endpoint_url: str | None = None,
        region: str | None = None,
        *,
        session: boto3.session.Session | None = None,
        multipart_threshold: int = 16 * MIB,
        multipart_chunksize: int = 16 * MIB,
    ) -> None:
        if not bucket:
            raise ConfigurationError("S3_BUCKET must not be empty")
        self.bucket = bucket
        try:
            self.prefix = validate_prefix(prefix.strip("/"))
        except StorageError as exc:
            raise ConfigurationError(f"S3_PREFIX={prefix!r} is not usable: {exc.message}") from exc
        self.endpoint_url = endpoint_url
        config = Config(signature_version="s3v4", retries={"mode": "standard", "max_attempts": 4})
        if endpoint_url:
            # Local and third-party S3 servers: no DNS per bucket, and only the checksums S3 requires
            # (newer botocore defaults send ones that some S3-compatible servers reject).
            config = config.merge(
                Config(
                    s3={"addressing_style": "path"},
                    request_checksum_calculation="when_required",
                    response_checksum_validation="when_required",
                )
            )
        try:
            self._client: S3Client = (session or boto3.session.Session()).client(
                "s3", endpoint_url=endpoint_url or None, region_name=region or None, config=config
            )
        except (BotoCoreError, ValueError) as exc:
            raise ConfigurationError(
                f"cannot create an S3 client (S3_ENDPOINT_URL={endpoint_url!r}, S3_REGION={region!r}): {exc}"
            ) from exc
        self._transfer = TransferConfig(
            multipart_threshold=multipart_threshold, multipart_chunksize=multipart_chunksize
        )

    def _full_key(self, key: str) -> str:
        validate_key(key)
        full = f"{self.prefix}/{key}" if self.prefix else key
        if len(full.encode("utf-8")) > MAX_KEY_BYTES:
            raise StorageError(
                f"invalid key {key!r}: with prefix {self.prefix!r} it is over {MAX_KEY_BYTES} bytes"
            )
        return full

    def _full_prefix(self, prefix: str) -> str:
        validate_prefix(prefix)
        if not self.prefix:
            return prefix
        return f"{self.prefix}/{prefix}"

    def _error(self, operation: str, target: str, exc: BaseException) -> StorageError:
        code, message = _error_code(exc)
        detail = f": {message}" if message else ""
        return StorageError(
            f"S3 {operation} of s3://{self.bucket}/{target} failed with {code}{detail}",
            recoverable=True,
            suggestion=_suggestion(code, self.bucket),
        )

    @staticmethod
    def _is_missing(exc: ClientError) -> bool:
        return str(exc.response.get("Error", {}).get("Code")) in _MISSING_KEY_CODES

    def put_file(self, key: str, path: Path, content_type: str | None = None) -> None:
        full = self._full_key(key)
        extra = {"ContentType": content_type or guess_content_type(key)}
        try:
            self._client.upload_file(str(path), self.bucket, full, ExtraArgs=extra, Config=self._transfer)
        except (BotoCoreError, Boto3Error, ClientError) as exc:
            raise self._error("upload", full, exc) from exc
        except OSError as exc:
            raise StorageError(f"cannot read {path} to upload it: {exc.strerror or exc}") from exc

    def put_bytes(self, key: str, data: bytes, content_type: str | None = None) -> None:
        full = self._full_key(key)
        try:
            self._client.put_object(
                Bucket=self.bucket, Key=full, Body=data, ContentType=content_type or guess_content_type(key)
            )
        except (BotoCoreError, ClientError) as exc:
            raise self._error("PutObject", full, exc) from exc

    def get_bytes(self, key: str) -> bytes | None:
        full = self._full_key(key)
        try:
            response = self._client.get_object(Bucket=self.bucket, Key=full)
            with contextlib.closing(response["Body"]) as body:
                return body.read()
        except ClientError as exc:
            if self._is_missing(exc):
                return None
            raise self._error("GetObject", full, exc) from exc
        except BotoCoreError as exc:
            raise self._error("GetObject", full, exc) from exc

    def download(self, key: str, dest: Path) -> bool:
        # GetObject streamed to a temp file rather than download_file: its HEAD-first errors name no code.
        full = self._full_key(key)
        try:
            response = self._client.get_object(Bucket=self.bucket, Key=full)
            with contextlib.closing(response["Body"]) as body, _atomic_writer(Path(dest)) as out:
                for chunk in body.iter_chunks(MIB):
                    out.write(chunk)
        except ClientError as exc:
            if self._is_missing(exc):
                return False
            raise self._error("GetObject", full, exc) from exc
        except BotoCoreError as exc:
            raise self._error("GetObject", full, exc) from exc
        except OSError as exc:
            raise StorageError(f"cannot write {dest}: {exc.strerror or exc}", recoverable=True) from exc
        return True

    def exists(self, key: str) -> bool:
        return self.size(key) is not None

    def _list_full(self, full_prefix: str) -> list[StoredObject]:
        found: list[StoredObject] = []
        try:
            paginator = self._client.get_paginator("list_objects_v2")
            pages = paginator.paginate(
                Bucket=self.bucket, Prefix=full_prefix, PaginationConfig={"PageSize": LIST_PAGE_SIZE}
            )
            for page in pages:
                found.extend(
                    StoredObject(obj["Key"], obj.get("Size", 0), obj.get("LastModified", _EPOCH))
                    for obj in page.get("Contents", [])
                    if "Key" in obj and not obj["Key"].endswith("/")
                )
        except (BotoCoreError, ClientError) as exc:
            raise self._error("ListObjectsV2", full_prefix, exc) from exc
        return found

    def _relative(self, full_key: str) -> str:
        return full_key[len(self.prefix) + 1 :] if self.prefix else full_key

    def list_keys(self, prefix: str) -> list[str]:
        return [found.key for found in self.list_objects(prefix)]

    def list_objects(self, prefix: str) -> list[StoredObject]:
        found = self._list_full(self._full_prefix(prefix))
        return sorted(
            (StoredObject(self._relative(o.key), o.size, o.modified) for o in found), key=lambda o: o.key
        )

    def delete_keys(self, relative_keys: list[str]) -> int:
        keys = [self._full_key(key) for key in relative_keys]
        for start in range(0, len(keys), DELETE_BATCH):
            batch: list[ObjectIdentifierTypeDef] = [{"Key": k} for k in keys[start : start + DELETE_BATCH]]
            try:
                response = self._client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True}
                )
            except (BotoCoreError, ClientError) as exc:
                raise self._error("DeleteObjects", batch[0]["Key"], exc) from exc
            errors = response.get("Errors", [])
            if errors:
                first = errors[0]
                code = str(first.get("Code", "Unknown"))
                raise StorageError(
                    f"S3 DeleteObjects in s3://{self.bucket} failed for {len(errors)} "
                    f"key(s), e.g. {first.get('Key')!r}: {code} {first.get('Message', '')}".rstrip(),
                    recoverable=True,
                    suggestion=_suggestion(code, self.bucket),
                )
        return len(keys)

    def location(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._full_key(key)}"

    def presigned_url(
        self, key: str, expires_seconds: int, content_disposition: str | None = None
    ) -> str | None:
        extra = {} if content_disposition is None else {"ResponseContentDisposition": content_disposition}
        return self._presign("get_object", key, expires_seconds, extra)

    def presigned_put_url(self, key: str, expires_seconds: int) -> str:
        """A time-limited HTTP PUT URL that stores its request body under key (no credentials needed)."""
        return self._presign("put_object", key, expires_seconds, {})

    def _presign(self, method: str, key: str, expires_seconds: int, extra: dict[str, str]) -> str:
        full = self._full_key(key)
        if not 1 <= expires_seconds <= MAX_PRESIGN_SECONDS:
            raise StorageError(
                f"presigned URL expiry must be 1..{MAX_PRESIGN_SECONDS} seconds, not {expires_seconds}"
            )
        try:
            params = {"Bucket": self.bucket, "Key": full, **extra}
            return self._client.generate_presigned_url(method, Params=params, ExpiresIn=expires_seconds)
        except (BotoCoreError, ClientError) as exc:
            raise self._error(f"presign {method}", full, exc) from exc

    def size(self, key: str) -> int | None:
        """The object's size in bytes, or None when there is no such key."""
        full = self._full_key(key)
        try:
            return self._client.head_object(Bucket=self.bucket, Key=full)["ContentLength"]
        except ClientError as exc:
            if self._is_missing(exc):
                return None
            raise self._error("HeadObject", full, exc) from exc
        except BotoCoreError as exc:
            raise self._error("HeadObject", full, exc) from exc


def storage_from_settings(settings: Settings) -> Storage:
    """The storage backend the settings ask for (STORAGE_BACKEND=local|s3)."""
    if settings.storage_backend == StorageBackend.S3:
        if not settings.s3_bucket:
            raise ConfigurationError("S3_BUCKET must be set when STORAGE_BACKEND=s3")
        return S3Storage(
            settings.s3_bucket,
            settings.s3_prefix,
            settings.s3_endpoint_url,
            settings.s3_region,
        )
    return LocalStorage(settings.output_dir)
