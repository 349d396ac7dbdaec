"""Schemathesis against the app's OpenAPI schema on a live server: every operation, every default check."""

from __future__ import annotations

import re
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from api_harness import KEYS, ApiServer, api_settings
from hypothesis import HealthCheck, settings
from schemathesis.checks import positive_data_acceptance
from schemathesis.config import SchemathesisConfig

from videojobs.languages import language
from videojobs_api.app import create_app
from videojobs_api.routes import IDEMPOTENCY_KEY_PATTERN

EXAMPLES_PER_OPERATION = 20

# The schema of an app that is never started; the calls go to the module's live deployment.
CONFIG = SchemathesisConfig.from_dict(
    {"request-timeout": 10, "auth": {"openapi": {"HTTPBearer": {"bearer": KEYS["alice"]}}}}
)
schema = schemathesis.openapi.from_dict(
    create_app(api_settings(Path(tempfile.gettempdir()))).openapi(), config=CONFIG
)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    out = tmp_path_factory.mktemp("api-schema")
    with ApiServer(api_settings(out, local_workers=0, max_active_jobs=10_000)) as api:
        yield api


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)
def test_the_api_keeps_its_openapi_contract(case: schemathesis.Case, deployment: ApiServer) -> None:
    operation = (case.operation.method.upper(), case.operation.path)
    headers, query = case.headers or {}, case.query or {}
    key = headers.get("Idempotency-Key")
    if operation == ("POST", "/v1/videos/generate") and key and re.fullmatch(IDEMPOTENCY_KEY_PATTERN, key):
        # Examples share keys, and a key reused with another body is a 422 by design (see the contract tests).
        headers["Idempotency-Key"] = uuid.uuid4().hex
    # A cursor is opaque: the schema cannot tell a forged one, which is a 422, from a real one.
    forged_cursor = operation == ("GET", "/v1/videos/jobs") and "cursor" in query
    # Whether espeak-ng (the deployment's default voice) speaks a language is not in the schema either: a
    # well-formed tag it has no voice for is a 422 naming language (see the contract tests).
    body = case.body if isinstance(case.body, dict) else {}
    unspeakable = isinstance(body.get("language"), str) and language(body["language"]) is None
    excluded = [positive_data_acceptance] if forged_cursor or unspeakable else []
    case.call_and_validate(base_url=deployment.url, excluded_checks=excluded)
