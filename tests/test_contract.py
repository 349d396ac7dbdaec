"""The VideoJob contract: stage progress marks, validation limits, wire format."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from videojobs.contract import (
    STAGES,
    GenerationRequest,
    JobStatus,
    Phase,
    Stage,
    VoiceSpec,
    immutable_request_fields,
    stage_progress,
)


def test_stage_marks_follow_the_seed_and_only_grow() -> None:
    assert [STAGES[s].progress for s in Stage] == [5, 15, 30, 50, 80, 90, 95, 100]
    assert stage_progress(Stage.INITIALIZING) == 0
    assert stage_progress(Stage.RENDERING, 0.5) == 65
    assert stage_progress(Stage.RENDERING, 7) == 80  # fractions are clamped


def test_request_limits_name_the_field() -> None:
    with pytest.raises(ValidationError, match="topic"):
        GenerationRequest(topic="")
    with pytest.raises(ValidationError, match="topic"):
        GenerationRequest(topic="x" * 501)
    with pytest.raises(ValidationError, match="quality"):
        GenerationRequest.model_validate({"topic": "t", "quality": "ultra"})
    with pytest.raises(ValidationError, match=r"maxScenes|max_scenes"):
        GenerationRequest.model_validate({"topic": "t", "maxScenes": 0})
    with pytest.raises(ValidationError, match="unknownField"):
        GenerationRequest.model_validate({"topic": "t", "unknownField": 1})


def test_wire_format_is_camel_case_and_round_trips() -> None:
    status = JobStatus(phase=Phase.RUNNING)
    status.enter(Stage.CODE_GENERATION, 0.5)
    wire = status.to_wire()
    assert wire["stage"] == "code_generation" and wire["progress"] == 40
    assert "heartbeatTime" in wire and "observedGeneration" not in wire
    assert JobStatus.model_validate(wire) == status
    assert Phase.CANCELLED.is_terminal and not Phase.QUEUED.is_terminal


def test_language_is_a_bcp47_tag_espeak_can_speak() -> None:
    assert GenerationRequest(topic="x").language == "en"
    assert GenerationRequest(topic="x", language="zh-Hans-CN").language == "zh-Hans-CN"
    for bad in ("", "german", "de_DE", "1a"):
        with pytest.raises(ValidationError):
            GenerationRequest(topic="x", language=bad)
    with pytest.raises(ValidationError, match="cannot be spoken by espeak"):
        GenerationRequest(topic="x", language="sw", voice=VoiceSpec(backend="espeak"))
    assert (
        GenerationRequest(topic="x", language="sw", voice=VoiceSpec(backend="openai/tts-1")).language == "sw"
    )
    assert "language" in immutable_request_fields()
