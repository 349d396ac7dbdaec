"""The key `videojobs serve` makes itself on loopback when none is configured: stored owner-only, reused."""

from __future__ import annotations

import ipaddress
import os
import secrets
import shlex
import socket
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from videojobs.errors import ConfigurationError
from videojobs_api.auth import MIN_KEY_LENGTH, ApiKey, Role, hash_key
from videojobs_api.models import API_PREFIX
from videojobs_api.settings import ApiSettings

LOCAL_PRINCIPAL = "local"
"""The principal of the generated key: the laptop's one user, an admin (it sees every job)."""


def default_key_file() -> Path:
    """$XDG_STATE_HOME/videojobs/api-key, else ~/.local/state/videojobs/api-key (the user's own state)."""
    state = os.environ.get("XDG_STATE_HOME", "")
    if Path(state).is_absolute():  # the XDG rule: a relative path is ignored
        return Path(state) / "videojobs" / "api-key"
    try:
        home = Path.home()
    except RuntimeError:
        raise ConfigurationError(
            "no home folder to keep the API key in", suggestion="set VIDEOJOBS_API_LOCAL_KEY_FILE"
        ) from None
    return home / ".local" / "state" / "videojobs" / "api-key"


def is_loopback(host: str) -> bool:
    """Whether every address `host` names is a loopback one (a name that does not resolve is not)."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)}
    except (OSError, UnicodeError):
        return False
    return bool(addresses) and all(ipaddress.ip_address(address).is_loopback for address in addresses)


@dataclass(frozen=True)
class LocalKey:
    """The generated key, where it is stored, and whether this start made it."""

    secret: str
    path: Path
    created: bool


def serving_keys(settings: ApiSettings, host: str) -> tuple[ApiSettings, LocalKey | None]:
    """The settings to serve `host` with: the configured keys, else (on loopback only) the local key."""
    if settings.keys:
        return settings, None
    if not is_loopback(host):
        raise ConfigurationError(
            f"no API keys, and {host!r} is not a loopback address",
            suggestion="set VIDEOJOBS_API_KEYS or VIDEOJOBS_API_KEYS_FILE (name:role:key); "
            "only a server bound to loopback makes its own key",
        )
    local = load_or_create_key(settings.local_key_file or default_key_file())
    key = ApiKey(name=LOCAL_PRINCIPAL, role=Role.ADMIN, sha256=hash_key(local.secret))
    return settings.model_copy(update={"keys": (key,)}), local


def load_or_create_key(path: Path) -> LocalKey:
    """The key stored at `path`, or a new one stored there (mode 0600, written whole or not at all)."""
    secret = _read_key(path)
    if secret is not None:
        return LocalKey(secret, path, created=False)
    secret = _store_new_key(path)
    if secret is not None:
        return LocalKey(secret, path, created=True)
    secret = _read_key(path)  # another server made it at the same moment: share it
    if secret is None:
        raise ConfigurationError(f"cannot store the API key in {path}", suggestion="delete the file")
    return LocalKey(secret, path, created=False)


def _read_key(path: Path) -> str | None:
    try:
        with path.open() as file:
            info = os.fstat(file.fileno())
            if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o077:
                raise ConfigurationError(
                    f"the API key file {path} is not readable by its owner alone "
                    f"(mode {stat.filemode(info.st_mode)})",
                    suggestion=f"delete it for a new key, or chmod 600 {shlex.quote(str(path))}",
                )
            text = file.read().strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "not text"
        raise ConfigurationError(
            f"cannot read the API key file {path}: {reason}", suggestion="fix or delete it"
        ) from None
    if len(text) < MIN_KEY_LENGTH or len(text.split()) != 1 or not text.isprintable():
        raise ConfigurationError(
            f"the API key file {path} holds no key (one word of at least {MIN_KEY_LENGTH} characters)",
            suggestion="delete it for a new key",
        )
    return text


def _store_new_key(path: Path) -> str | None:
    """A new key written to `path`, or None where one is there already; a new folder is made 0700."""
    secret = secrets.token_urlsafe(32)
    try:
        path.parent.parent.mkdir(parents=True, exist_ok=True)
        path.parent.mkdir(mode=0o700, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")  # mode 0600
        try:
            with os.fdopen(descriptor, "w") as file:
                file.write(secret + "\n")
                file.flush()
                os.fsync(file.fileno())
            os.link(temporary, path)  # fails where a key appeared meanwhile, which then stays
        finally:
            Path(temporary).unlink()
    except FileExistsError:
        return None
    except OSError as error:
        raise ConfigurationError(
            f"cannot store the API key in {path}: {error.strerror}",
            suggestion="set VIDEOJOBS_API_LOCAL_KEY_FILE to a writable place, or VIDEOJOBS_API_KEYS",
        ) from None
    return secret


def server_url(host: str, port: int) -> str:
    """The http URL of a server bound to host:port (an IPv6 address in brackets)."""
    address = f"[{host}]" if ":" in host else host
    return f"http://{address}:{port}"


def curl_example(host: str, port: int, secret: str) -> str:
    """A ready-to-paste `curl` line that creates a video on the server at host:port with `secret`."""
    return shlex.join(
        [
            "curl",
            "-X",
            "POST",
            f"{server_url(host, port)}{API_PREFIX}/videos/generate",
            "-H",
            f"Authorization: Bearer {secret}",
            "-H",
            "Content-Type: application/json",
            "-d",
            '{"topic": "The Pythagorean theorem", "quality": "low"}',
        ]
    )
