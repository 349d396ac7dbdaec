"""One request contract: every field of the VideoJob spec's request part is in REST, the CLI, the CRD and the
OpenAPI, with the same validation and description, and a field added to the spec appears in all of them."""

from __future__ import annotations

import functools
import inspect
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import pytest
from api_harness import FULL_REQUEST, api_settings
from cli_runs import VIDEOJOBS
from pydantic import Field, ValidationError
from pydantic.alias_generators import to_camel

from videojobs.contract import (
    MUTABLE,
    ContractModel,
    GenerationRequest,
    QueueStatus,
    VideoJobSpec,
    immutable_request_fields,
    mutable_fields,
)
from videojobs.crd import custom_resource_definition, structural_schema
from videojobs_api.app import create_app
from videojobs_api.backends.videojob_cache import stored_job
from videojobs_api.models import JobCreateRequest, JobStatusResponse, snake_case, to_contract
from videojobs_cli.request_options import request_from_options, request_options


def leaf_paths(model: type[ContractModel], prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """The path of every leaf field (nested contract models are walked into)."""
    for name, info in model.model_fields.items():
        nested = [
            kind
            for kind in (info.annotation, *getattr(info.annotation, "__args__", ()))
            if isinstance(kind, type) and issubclass(kind, ContractModel)
        ]
        if nested:
            yield from leaf_paths(nested[0], (*prefix, name))
        else:
            yield (*prefix, name)


REQUEST_FIELDS = list(leaf_paths(GenerationRequest))


def described(schema: dict[str, Any], path: tuple[str, ...], definitions: dict[str, Any]) -> dict[str, Any]:
    """The schema of `path` inside an object schema (refs and nullable unions followed)."""
    node = schema
    for name in path:
        node = _resolved(node, definitions)["properties"][name]
    return _resolved(node, definitions) | {"description": node.get("description")}


def _resolved(node: dict[str, Any], definitions: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in node:
        return _resolved(definitions[node["$ref"].rsplit("/", 1)[-1]], definitions)
    options = [option for option in node.get("anyOf", []) if option.get("type") != "null"]
    if len(options) == 1:
        return _resolved(options[0], definitions) | {k: v for k, v in node.items() if k != "anyOf"}
    return node


@functools.cache
def openapi() -> dict[str, Any]:
    return create_app(api_settings(Path(tempfile.gettempdir()) / "unused")).openapi()


@functools.cache
def crd_spec() -> dict[str, Any]:
    version = custom_resource_definition()["spec"]["versions"][0]
    spec: dict[str, Any] = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    return spec


def field_info(path: tuple[str, ...]) -> Any:
    model: Any = GenerationRequest
    for name in path[:-1]:
        annotation = model.model_fields[name].annotation
        model = next(
            kind
            for kind in (annotation, *getattr(annotation, "__args__", ()))
            if isinstance(kind, type) and issubclass(kind, ContractModel)
        )
    return model.model_fields[path[-1]]


@pytest.mark.parametrize("path", REQUEST_FIELDS, ids=".".join)
def test_every_request_field_is_in_rest_cli_crd_and_openapi_alike(path: tuple[str, ...]) -> None:
    description = field_info(path).description
    assert description, f"{'.'.join(path)} needs a description: REST, CLI and CRD all show it"

    body_schema = openapi()["components"]["schemas"]["GenerationRequest"]
    rest = described(body_schema, path, openapi()["components"]["schemas"])
    assert rest["description"] == description

    crd = described(crd_spec(), tuple(to_camel(name) for name in path), {})
    assert crd["description"] == description
    for keyword in ("type", "enum", "minimum", "maximum", "minLength", "maxLength", "pattern", "maxItems"):
        if keyword in rest and keyword != "type":
            assert crd.get(keyword) == rest[keyword], (keyword, rest, crd)

    options = {option.path: option for option in request_options()}
    assert path in options, f"the CLI has no option for {'.'.join(path)}"
    assert options[path].parameter.annotation.__metadata__[0].help == description


def test_the_full_request_sets_every_field_and_means_the_same_everywhere() -> None:
    def set_paths(body: dict[str, Any], prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
        for key, value in body.items():
            yield from set_paths(value, (*prefix, key)) if isinstance(value, dict) else [(*prefix, key)]

    assert set(set_paths(FULL_REQUEST)) == set(REQUEST_FIELDS)
    contract = to_contract(JobCreateRequest.model_validate(FULL_REQUEST))
    defaults = GenerationRequest(topic="t").model_dump()
    for path in REQUEST_FIELDS:
        value, default = contract.model_dump(), defaults
        for name in path:
            value, default = value[name], (default or {}).get(name)
        choices = getattr(field_info(path).annotation, "__members__", None)
        if choices is None or len(choices) > 1:  # a one-value choice has nothing else to set
            assert value != default, f"FULL_REQUEST leaves {'.'.join(path)} at its default"
    wire = contract.to_wire()  # what the CRD stores: the same request in camelCase
    assert GenerationRequest.model_validate(wire) == contract
    assert VideoJobSpec.model_validate(wire).request() == contract


def test_cli_options_make_the_same_request_as_rest() -> None:
    options = request_options()
    values: dict[str, Any] = {}
    for option in options:
        value: Any = FULL_REQUEST
        for name in option.path:
            value = value[name]
        values[option.parameter.name] = value
    assert request_from_options(options, values) == to_contract(JobCreateRequest.model_validate(FULL_REQUEST))


def test_the_cli_help_lists_every_request_option() -> None:
    help_text = subprocess.run(
        [str(VIDEOJOBS), "generate", "--help"],
        capture_output=True,
        text=True,
        check=True,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    ).stdout
    for option in request_options():
        assert option.flag.lower() in help_text.lower(), option.flag


def test_a_field_added_to_the_spec_appears_everywhere_without_further_edits() -> None:
    class WithNewField(GenerationRequest):
        narrator_mood: int = Field(default=3, ge=1, le=5, description="How cheerful the narrator sounds.")

    crd = structural_schema(WithNewField)["properties"]["narratorMood"]
    assert crd == {
        "default": 3,
        "description": "How cheerful the narrator sounds.",
        "maximum": 5,
        "minimum": 1,
        "type": "integer",
    }
    rest = snake_case(WithNewField)
    assert rest.model_validate({"topic": "t", "narrator_mood": 5}).model_dump()["narrator_mood"] == 5
    with pytest.raises(ValidationError):
        rest.model_validate({"topic": "t", "narrator_mood": 9})
    assert "narrator_mood" in rest.model_json_schema()["properties"]
    flags = {option.flag for option in request_options(WithNewField)}
    assert "--narrator-mood" in flags


def test_immutable_fields_are_derived_from_the_spec() -> None:
    assert mutable_fields(GenerationRequest) == {"max_cost_usd", "tags", "webhook"}
    assert immutable_request_fields() == set(GenerationRequest.model_fields) - mutable_fields(
        GenerationRequest
    )
    guarded = {rule["fieldPath"] for rule in crd_spec()["x-kubernetes-validations"]}
    spec_only = {".attempt", ".cancel", ".managedBy"}  # rules of the VideoJob's own lifecycle fields
    assert guarded == {f".{to_camel(name)}" for name in immutable_request_fields()} | spec_only

    class WithFixedAndMutable(GenerationRequest):
        fixed: int = Field(default=1, description="Fixed.")
        changing: Annotated[int, MUTABLE] = Field(default=1, description="May change.")

    assert mutable_fields(WithFixedAndMutable) == {"max_cost_usd", "tags", "webhook", "changing"}


def test_the_generate_command_is_the_derived_options_plus_where_to_store() -> None:
    from videojobs_cli.main import generate

    names = list(inspect.signature(generate).parameters)
    assert names == [option.parameter.name for option in request_options()] + ["job_id", "out"]


def test_the_queue_place_the_operator_writes_is_the_api_statuss_queue() -> None:
    """status.queue of a VideoJob (camelCase, as the operator writes it) is `queue` in the API's status."""
    place = QueueStatus(name="tenant-a", position=2, position_in_cluster_queue=5)
    written = place.model_dump(by_alias=True, exclude_none=True)
    assert written == {"name": "tenant-a", "position": 2, "positionInClusterQueue": 5}
    meta = {"name": "q", "uid": "u1", "resourceVersion": "7", "creationTimestamp": "2026-12-06T10:00:00Z"}
    obj: dict[str, Any] = {"metadata": meta, "spec": {"topic": "Queues"}, "status": {"phase": "Queued"}}
    assert JobStatusResponse.of(stored_job(obj, "ns")).model_dump(mode="json")["queue"] is None
    obj["status"]["queue"] = written
    view = JobStatusResponse.of(stored_job(obj, "ns")).model_dump(mode="json")
    assert view["queue"] == {"name": "tenant-a", "position": 2, "position_in_cluster_queue": 5}
