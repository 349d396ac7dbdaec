"""The committed CRD is what the contract generates, and its schema declares every contract field."""

from __future__ import annotations

from pathlib import Path

import yaml

from videojobs.contract import RUNNER_STATUS_FIELDS, JobStatus, Stage, VideoJobSpec
from videojobs.crd import custom_resource_definition, render_yaml

CRD_FILE = Path(__file__).resolve().parents[1] / "crds" / "videojob.yaml"


def test_committed_crd_matches_the_contract() -> None:
    assert CRD_FILE.read_text() == render_yaml(), "run `make crds` and commit crds/videojob.yaml"


def _schema() -> dict[str, object]:
    version = custom_resource_definition()["spec"]["versions"][0]
    return version["schema"]["openAPIV3Schema"]["properties"]


def test_every_contract_field_is_in_the_schema() -> None:
    # Kopf and the API server silently prune fields a schema does not declare: nothing may be missing.
    properties = _schema()
    spec_fields = {field.alias for field in VideoJobSpec.model_fields.values()}
    assert spec_fields == set(properties["spec"]["properties"])  # type: ignore[index]
    status = JobStatus()
    status.enter(Stage.RENDERING)
    wire = status.to_wire()
    declared = properties["status"]["properties"]  # type: ignore[index]
    assert set(wire) <= set(declared)
    assert set(wire["scenes"]) <= set(declared["scenes"]["properties"])  # type: ignore[call-overload]


def test_schema_is_structural() -> None:
    text = yaml.safe_dump(custom_resource_definition())
    assert "$ref" not in text and "anyOf" not in text and "null" not in text


def test_the_eta_shows_with_wide_output_as_a_declared_status_field() -> None:
    version = custom_resource_definition()["spec"]["versions"][0]
    (column,) = [c for c in version["additionalPrinterColumns"] if c["name"] == "ETA"]
    assert column["priority"] == 1 and column["type"] == "string"  # a date column shows "<invalid>" ahead
    field = column["jsonPath"].removeprefix(".status.")
    assert _schema()["status"]["properties"][field]["format"] == "date-time"  # type: ignore[index]
    assert field in {JobStatus.model_fields[name].alias for name in RUNNER_STATUS_FIELDS}
