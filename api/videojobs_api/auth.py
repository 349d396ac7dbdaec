"""API keys (`Authorization: Bearer`) to principals, keys held only as SHA-256 hashes; signed video URLs."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated

from fastapi import Depends, Query, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from videojobs_api.problems import Unauthenticated

HASHED_PREFIX = "sha256:"
"""A key written as `sha256:<hex>` is already hashed (what a Secret should hold)."""
MIN_KEY_LENGTH = 16
_ENTRY_SEPARATOR = re.compile(r"[,\n]")


class Role(StrEnum):
    """What a principal may see: its own jobs (user) or every job (admin)."""

    USER = "user"
    ADMIN = "admin"


@dataclass(frozen=True)
class Principal:
    """Who is calling: every job belongs to the principal that created it."""

    name: str
    role: Role

    @property
    def is_admin(self) -> bool:
        """Whether the principal sees every principal's jobs."""
        return self.role is Role.ADMIN

    def may_see(self, owner: str) -> bool:
        """Whether the principal may see a job of `owner`: its own, or any for an admin."""
        return self.is_admin or owner == self.name


SIGNED_URL_PRINCIPAL = Principal(name="signed-url", role=Role.ADMIN)
"""Acts for a valid signed URL, which names its job itself."""


class ApiKey(BaseModel):
    """One configured key: its principal and the SHA-256 of its secret (never the secret itself)."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
    role: Role
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


def hash_key(secret: str) -> str:
    """The hex SHA-256 of a key."""
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_api_keys(text: str) -> list[ApiKey]:
    """Keys from `name:role:key` entries separated by commas or newlines; `#` lines are comments.

    Errors never quote an entry, since entries hold keys.
    """
    keys: list[ApiKey] = []
    for number, raw in enumerate(_ENTRY_SEPARATOR.split(text), 1):
        entry = raw.strip()
        if not entry or entry.startswith("#"):
            continue
        parts = entry.split(":", 2)
        if len(parts) != 3 or parts[1] not in {role.value for role in Role}:
            raise ValueError(f"API key entry {number} is not name:role:key with role user or admin")
        name, role, secret = parts
        if secret.startswith(HASHED_PREFIX):
            digest = secret.removeprefix(HASHED_PREFIX).lower()
        elif len(secret) < MIN_KEY_LENGTH:
            raise ValueError(
                f"API key entry {number} ({name}): keys need at least {MIN_KEY_LENGTH} characters"
            )
        else:
            digest = hash_key(secret)
        keys.append(ApiKey(name=name, role=Role(role), sha256=digest))
    return keys


class KeyTable:
    """Looks up the principal of a presented key by its hash."""

    def __init__(self, keys: Iterable[ApiKey]) -> None:
        self._principals = {key.sha256: Principal(key.name, key.role) for key in keys}

    def authenticate(self, credentials: HTTPAuthorizationCredentials | None) -> Principal:
        """The principal of a bearer key; Unauthenticated when it is missing or unknown."""
        if credentials is None:
            raise Unauthenticated("Send an API key as 'Authorization: Bearer <key>'.")
        principal = self._principals.get(hash_key(credentials.credentials))
        if principal is None:
            raise Unauthenticated("The API key is not valid.")
        return principal


class UrlSigner:
    """HMAC-signed, expiring URLs for one job's video, usable without an API key (e.g. by `<video src>`)."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def sign(self, job_id: str, expires: int) -> str:
        """The signature of `job_id` valid until the Unix time `expires`."""
        digest = hmac.new(self._secret, f"{job_id}:{expires}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def verify(self, job_id: str, expires: int, signature: str) -> bool:
        """Whether the signature is this deployment's for `job_id` and has not expired."""
        expected = self.sign(job_id, expires).encode()
        return expires >= time.time() and hmac.compare_digest(expected, signature.encode("utf-8", "replace"))


bearer_scheme = HTTPBearer(auto_error=False, description="An API key of this deployment.")
BearerCredentials = Annotated[HTTPAuthorizationCredentials | None, Security(bearer_scheme)]


async def key_table(request: Request) -> KeyTable:
    """The app's key table (set by the app factory)."""
    keys = request.app.state.keys
    assert isinstance(keys, KeyTable)
    return keys


async def require_principal(
    keys: Annotated[KeyTable, Depends(key_table)], credentials: BearerCredentials
) -> Principal:
    """Dependency: the calling principal, or a 401 problem."""
    return keys.authenticate(credentials)


CurrentPrincipal = Annotated[Principal, Depends(require_principal)]


async def url_signer(request: Request) -> UrlSigner:
    """The app's URL signer (set by the app factory)."""
    signer = request.app.state.signer
    assert isinstance(signer, UrlSigner)
    return signer


Signer = Annotated[UrlSigner, Depends(url_signer)]


async def require_video_access(
    request: Request,
    keys: Annotated[KeyTable, Depends(key_table)],
    signer: Signer,
    credentials: BearerCredentials,
    expires: Annotated[
        int | None,
        WithJsonSchema({"type": "integer", "minimum": 0}),
        Query(ge=0, description="Expiry of a signed URL (Unix time)."),
    ] = None,
    signature: Annotated[
        str | None,
        WithJsonSchema({"type": "string", "maxLength": 100}),
        Query(max_length=100, description="Signature of a signed URL."),
    ] = None,
) -> Principal:
    """Dependency: the caller's principal, or one that may read the path's job with its valid signed URL."""
    if expires is None and signature is None:
        return keys.authenticate(credentials)
    job_id = str(request.path_params["job_id"])
    if expires is None or signature is None or not signer.verify(job_id, expires, signature):
        raise Unauthenticated("The signed URL is not valid or has expired.")
    return SIGNED_URL_PRINCIPAL


VideoPrincipal = Annotated[Principal, Depends(require_video_access)]
