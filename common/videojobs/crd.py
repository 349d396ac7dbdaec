"""The VideoJob CustomResourceDefinition, generated from the contract models (one source of truth)."""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import BaseModel
from pydantic.alias_generators import to_camel

from videojobs.contract import RUNNER_STATUS_FIELDS, JobStatus, VideoJobSpec, immutable_request_fields

GROUP = "videojobs.io"
VERSION = "v1alpha1"
KIND = "VideoJob"
PLURAL = "videojobs"
API_VERSION = f"{GROUP}/{VERSION}"

# Keywords of JSON Schema that a structural CRD schema does not take (or that only add noise).
_DROPPED = {"title", "additionalProperties", "$defs", "discriminator", "readOnly"}

PRINTER_COLUMNS: list[dict[str, Any]] = [
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
    {"name": "Stage", "type": "string", "jsonPath": ".status.stage"},
    {"name": "Progress", "type": "integer", "jsonPath": ".status.progress", "description": "Percent done"},
    {"name": "Scenes", "type": "string", "jsonPath": ".status.scenes.ready", "description": "Rendered/total"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    # A string, not a date: kubectl shows a date as its age, and a time to come as "<invalid>".
    {
        "name": "ETA",
        "type": "string",
        "jsonPath": ".status.estimatedCompletionTime",
        "description": "Estimated completion time (UTC)",
        "priority": 1,
    },
    {"name": "Topic", "type": "string", "jsonPath": ".spec.topic", "priority": 1},
    {"name": "Job", "type": "string", "jsonPath": ".status.jobName", "priority": 1},
    {
        "name": "Position",
        "type": "integer",
        "jsonPath": ".status.queue.position",
        "description": "Place in its Kueue LocalQueue while Queued (1: admitted next)",
        "priority": 1,
    },
    {"name": "Message", "type": "string", "jsonPath": ".status.message", "priority": 1},
]


def structural_schema(model: type[BaseModel], mode: str = "validation") -> dict[str, Any]:
    """The model's JSON schema turned into a structural OpenAPI v3 schema: refs inlined, nulls removed."""
    schema = model.model_json_schema(by_alias=True, mode=mode)  # type: ignore[arg-type]
    converted: dict[str, Any] = _convert(schema, schema.get("$defs", {}))
    return converted


def _convert(node: Any, definitions: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_convert(item, definitions) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = definitions[node["$ref"].rsplit("/", 1)[-1]]
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return _convert(merged, definitions)
    if "anyOf" in node:  # Optional[X] -> X; the field is simply not required
        options = [option for option in node["anyOf"] if option.get("type") != "null"]
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        if len(options) == 1:
            return _convert({**options[0], **rest}, definitions)
        return _convert({**rest, "anyOf": options}, definitions)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED and not (key == "additionalProperties" and isinstance(value, dict)):
            continue
        if key == "default" and (value is None or value == {} or value == []):
            continue
        if key == "exclusiveMinimum":  # JSON Schema 2020 number -> OpenAPI v3.0 boolean form
            out["minimum"], out["exclusiveMinimum"] = value, True
            continue
        if key == "const":
            out["enum"] = [value]
            continue
        if key == "properties":
            out[key] = {name: _convert(sub, definitions) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "anyOf"):
            out[key] = _convert(value, definitions)
        else:
            out[key] = value
    return out


IMMUTABLE_SPEC_FIELDS = ("managed_by",)
"""Fields of the spec beyond the request that never change once the VideoJob exists."""
_ATTEMPT, _OLD_ATTEMPT = (
    "(has(self.attempt) ? self.attempt : 0)",
    "(has(oldSelf.attempt) ? oldSelf.attempt : 0)",
)


def _transition_rules() -> list[dict[str, str]]:
    """CEL transition rules: the fixed fields never change, `attempt` only goes up, and `cancel` is final
    (only a retry, which raises `attempt` in the same change, may clear it)."""
    rules = []
    fixed = immutable_request_fields() | set(IMMUTABLE_SPEC_FIELDS)
    for field in sorted(fixed, key=list(VideoJobSpec.model_fields).index):
        name = to_camel(field)
        rules.append(
            {
                "rule": f"has(self.{name}) == has(oldSelf.{name}) && "
                f"(!has(self.{name}) || self.{name} == oldSelf.{name})",
                "message": f"spec.{name} is immutable: create a new VideoJob to change it",
                "fieldPath": f".{name}",
                "reason": "FieldValueForbidden",
            }
        )
    rules.append(
        {
            "rule": f"{_ATTEMPT} >= {_OLD_ATTEMPT}",
            "message": "spec.attempt may only be raised (by one, to retry the job)",
            "fieldPath": ".attempt",
            "reason": "FieldValueInvalid",
        }
    )
    rules.append(
        {
            "rule": "!(has(oldSelf.cancel) && oldSelf.cancel) || (has(self.cancel) && self.cancel) || "
            f"{_ATTEMPT} > {_OLD_ATTEMPT}",
            "message": "spec.cancel is final: only a retry (spec.attempt raised with it) clears it",
            "fieldPath": ".cancel",
            "reason": "FieldValueForbidden",
        }
    )
    return rules


def _status_schema() -> dict[str, Any]:
    status = structural_schema(JobStatus, mode="serialization")
    conditions = status["properties"]["conditions"]
    conditions["x-kubernetes-list-type"] = "map"
    conditions["x-kubernetes-list-map-keys"] = ["type"]
    conditions["items"]["required"] = ["type", "status", "reason", "lastTransitionTime"]
    status.pop("required", None)
    for field in RUNNER_STATUS_FIELDS:  # absent until a runner reports: STAGE and PROGRESS stay empty
        status["properties"][to_camel(field)].pop("default", None)
    return status


def _spec_schema() -> dict[str, Any]:
    spec = structural_schema(VideoJobSpec)
    spec["x-kubernetes-validations"] = _transition_rules()
    return spec


def custom_resource_definition() -> dict[str, Any]:
    """The whole CRD manifest."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{PLURAL}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": KIND.lower(),
                "shortNames": ["vj"],
                "categories": ["videojobs"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": "A request to turn a topic into a narrated Manim explainer video.",
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": _spec_schema(),
                                "status": _status_schema(),
                            },
                        }
                    },
                }
            ],
        },
    }


def render_yaml() -> str:
    """The CRD as the YAML committed in crds/videojob.yaml."""
    header = "# Generated from common/videojobs/contract.py by `videojobs crd`; do not edit by hand.\n"
    body: str = yaml.safe_dump(custom_resource_definition(), sort_keys=False, width=100)
    return header + body
