"""Narration through the real parts: espeak-ng, litellm speech over HTTP, the speech cache, paced renders."""

from __future__ import annotations

import asyncio
import json
import textwrap
from pathlib import Path

import pytest
from cli_runs import ffprobe, job_folders, parse_srt, read_json, run_cli
from fake_llm import FakeLLM

from videojobs.contract import GenerationRequest, Phase, Quality, Stage, VoiceSpec
from videojobs.errors import BudgetExceededError, ConfigurationError
from videojobs.languages import LATIN_CUE_CHARS
from videojobs.settings import Settings
from videojobs.storage import LocalStorage
from videojobs_runner.combine import sentences
from videojobs_runner.jobs import create_job, resolve, run_job
from videojobs_runner.llm import LLMClient, UsageLedger, litellm
from videojobs_runner.narration import build_track, cues, lay_out
from videojobs_runner.sandbox import RenderLimits, render_scene
from videojobs_runner.tts import SPEECH_CACHE_PREFIX, Narrator, SceneNarration, Segment, audio_seconds

SHORT, LONG = "One, two.", "Three, four, five, six, seven, eight, nine and ten."
TEXT = f"{SHORT} {LONG}"
FRAME = 1 / 15  # at low quality


def narrator(voice: VoiceSpec, store: Path, scratch: Path, ledger: UsageLedger) -> Narrator:
    llm = LLMClient(ledger, timeout_seconds=30, retries=0, max_output_tokens=1024)
    return Narrator(voice, "en", LocalStorage(store), llm, scratch)


def speak(voice: VoiceSpec, tmp_path: Path, ledger: UsageLedger, text: str = TEXT) -> SceneNarration:
    return asyncio.run(
        narrator(voice, tmp_path / "store", tmp_path / "scratch", ledger).narrate(
            text, Stage.SCENARIO_CREATION
        )
    )


def test_espeak_speaks_each_sentence_once_and_measures_it(tmp_path: Path) -> None:
    ledger = UsageLedger()
    narration = speak(VoiceSpec(backend="espeak"), tmp_path, ledger)
    assert [s.text for s in narration.segments] == [SHORT, LONG]
    for segment in narration.segments:  # durations agree with ffprobe's reading of the stored audio
        stored = tmp_path / "store" / segment.audio_key
        assert segment.audio_key.startswith(SPEECH_CACHE_PREFIX + "/")
        assert float(ffprobe(stored)["format"]["duration"]) == pytest.approx(segment.seconds, abs=0.01)
    assert 0.3 < narration.segments[0].seconds < narration.segments[1].seconds
    assert (ledger.total.tts_calls, ledger.total.tts_characters, ledger.total.cost_usd) == (
        2,
        len(SHORT + LONG),
        0,
    )

    again = UsageLedger()  # another job on the same storage: every sentence comes from the cache
    assert speak(VoiceSpec(backend="espeak"), tmp_path, again) == narration
    assert again.total.tts_calls == 0

    other = UsageLedger()  # another voice is other audio
    other_voice = speak(VoiceSpec(backend="espeak", voice="en-us"), tmp_path, other)
    assert other.total.tts_calls == 2
    assert {s.audio_key for s in other_voice.segments}.isdisjoint(s.audio_key for s in narration.segments)


def test_missing_espeak_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ConfigurationError, match="espeak-ng was not found") as caught:
        speak(VoiceSpec(backend="espeak"), tmp_path, UsageLedger())
    assert "TTS_BACKEND=none" in caught.value.suggestion


def test_unknown_espeak_voice_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="voice does not exist") as caught:
        speak(VoiceSpec(backend="espeak", voice="nosuchvoice"), tmp_path, UsageLedger())
    assert caught.value.stage is Stage.SCENARIO_CREATION and "espeak-ng --voices" in caught.value.suggestion


def test_speech_model_over_http_is_priced_and_cached(fake_llm: FakeLLM, tmp_path: Path) -> None:
    voice = VoiceSpec(backend="openai/tts-1", voice="nova")
    ledger = UsageLedger()
    narration = speak(voice, tmp_path, ledger)
    assert fake_llm.speech_inputs() == [SHORT, LONG]
    assert narration.segments[0].seconds > 0.3
    price = litellm.model_cost["tts-1"]["input_cost_per_character"]  # litellm bills non-space characters
    billed = len((SHORT + LONG).replace(" ", ""))
    assert ledger.total.cost_usd == pytest.approx(billed * price, abs=1e-7)
    assert ledger.by_stage[Stage.SCENARIO_CREATION].tts_calls == 2

    speak(voice, tmp_path, UsageLedger())
    speak(voice, tmp_path, UsageLedger(), text=f"{LONG} A new one.")
    assert fake_llm.speech_inputs() == [SHORT, LONG, "A new one."]  # only the unseen sentence was asked for


def test_speech_over_budget_is_refused_before_sending(fake_llm: FakeLLM, tmp_path: Path) -> None:
    with pytest.raises(BudgetExceededError, match="speaking 9 characters with openai/tts-1"):
        speak(VoiceSpec(backend="openai/tts-1"), tmp_path, UsageLedger(max_cost_usd=1e-5))
    assert fake_llm.speech_inputs() == []


def segments(*seconds: float) -> SceneNarration:
    parts = [Segment(text=f"Sentence {n}.", audio_key=f"k{n}", seconds=s) for n, s in enumerate(seconds, 1)]
    return SceneNarration(backend="espeak", segments=parts)


def test_speech_starts_with_its_block_and_overruns_are_drift() -> None:
    timing = lay_out(segments(1.0, 0.5, 0.8), [1.2, 0.4, 1.0], video_seconds=2.6)
    assert timing.segment_starts == [0.0, 1.2, 1.7]  # segment 2 ran 0.1 s past its block: segment 3 waits
    assert [b.drift_seconds for b in timing.blocks] == [0.0, 0.1, 0.1]
    assert timing.max_drift_seconds == 0.1
    assert [c.start_seconds for c in cues(segments(1.0, 0.5, 0.8), timing, "en")] == [0.0, 1.2, 1.7]

    merged = lay_out(segments(1.0, 0.5, 0.8), [1.5], video_seconds=2.5)  # no sections: one block
    assert merged.segment_starts == [0.0, 1.0, 1.5]
    assert merged.blocks[0].drift_seconds == pytest.approx(0.8)  # voice runs 0.8 s past the picture
    fallback = lay_out(segments(1.0, 0.5), [], video_seconds=2.0)  # no measured blocks: the whole scene
    assert fallback.max_drift_seconds == 0.0 and len(fallback.blocks) == 1


def test_a_long_sentence_is_spoken_whole_and_subtitled_in_chunks() -> None:
    long = " ".join(["word"] * 40) + " end."
    assert sentences(f"{long} Short one.") == [long, "Short one."]  # what is synthesised: whole sentences
    narration = SceneNarration(backend="espeak", segments=[Segment(text=long, audio_key="k", seconds=6.0)])
    parts = cues(narration, lay_out(narration, [7.0], video_seconds=7.0), "en")
    assert len(parts) == 3 and all(len(c.text) <= LATIN_CUE_CHARS for c in parts)
    assert " ".join(c.text for c in parts) == long
    assert (parts[0].start_seconds, parts[-1].end_seconds) == (0.0, 6.0)


@pytest.mark.render
def test_render_is_paced_to_the_narration_and_the_track_matches_it(tmp_path: Path) -> None:
    code = tmp_path / "scene.py"
    code.write_text(
        textwrap.dedent(
            """
            from manim import *

            class Demo(Scene):
                def construct(self):
                    self.next_section()  # nothing shown yet: does not end the first block
                    self.play(Create(Circle()), run_time=0.4)
                    self.next_section()
                    self.play(FadeIn(Square().shift(RIGHT * 2)), run_time=1.2)
                    self.next_section()
                    self.play(FadeIn(Dot()), run_time=0.2)
                    self.next_section()
                    self.play(FadeIn(Text("extra").to_edge(UP)), run_time=0.2)
            """
        )
    )
    limits = RenderLimits(timeout_seconds=120, memory_mb=2048, cpu_seconds=120)
    speech = [1.0, 0.5, 0.8]
    outcome = asyncio.run(
        render_scene(code, "Demo", Quality.LOW, tmp_path / "work", limits, narration=speech)
    )
    assert outcome.ok and outcome.video is not None, outcome.log
    one, two, three = outcome.blocks  # the fourth section joined the last segment's block
    assert 1.0 <= one <= 1.0 + FRAME + 0.001  # 0.4 s of animation, padded to the 1.0 s of speech
    assert two == pytest.approx(1.2, abs=FRAME)  # longer than its 0.5 s of speech: left as it is
    assert 0.8 <= three <= 0.8 + FRAME + 0.001  # 0.4 s of animation, padded
    video_seconds = float(ffprobe(outcome.video)["format"]["duration"])
    assert sum(outcome.blocks) == pytest.approx(video_seconds, abs=0.01)  # blocks measured from the movie

    clips = []
    for n, seconds in enumerate(speech):  # stand-in speech of known length: sine tones
        clip = tmp_path / f"tone{n}.wav"
        _tone(clip, seconds)
        clips.append(clip)
    timing = lay_out(segments(*speech), outcome.blocks, video_seconds)
    assert timing.max_drift_seconds == 0.0
    track = asyncio.run(build_track(clips, timing, tmp_path / "track.wav"))
    assert track.track_seconds == pytest.approx(video_seconds, abs=0.01)
    assert audio_seconds(tmp_path / "track.wav") == pytest.approx(video_seconds, abs=0.01)


def _tone(path: Path, seconds: float) -> None:
    import subprocess

    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i", f"sine=f=440:d={seconds}", str(path)],
        check=True,
    )


@pytest.mark.render
def test_a_repeated_job_synthesises_no_sentence_again(fake_llm: FakeLLM, tmp_path: Path) -> None:
    settings = Settings(output_dir=tmp_path, default_quality=Quality.LOW)
    request = GenerationRequest(topic="Test topic", voice=VoiceSpec(backend="openai/tts-1", voice="nova"))
    first = resolve(request, settings)
    status = asyncio.run(run_job(first, create_job(first, settings), settings))
    assert status.phase is Phase.SUCCEEDED, status.error
    spoken = fake_llm.speech_inputs()
    assert len(spoken) == len(set(spoken)) == 5 and status.usage.tts_calls == 5
    metadata = json.loads((tmp_path / first.id / "metadata.json").read_text())
    assert metadata["narration"]["backend"] == "openai/tts-1"
    assert metadata["usage_by_stage"]["scenario_creation"]["tts_characters"] == sum(map(len, spoken))

    second = resolve(request, settings)
    again = asyncio.run(run_job(second, create_job(second, settings), settings))
    assert again.phase is Phase.SUCCEEDED, again.error
    assert fake_llm.speech_inputs() == spoken and again.usage.tts_calls == 0
    audio = [s for s in ffprobe(tmp_path / second.id / "video.mp4")["streams"] if s["codec_type"] == "audio"]
    assert audio and audio[0]["codec_name"] == "aac"


@pytest.mark.render
def test_voice_none_keeps_a_silent_track_and_spreads_the_subtitles(fake_llm: FakeLLM, tmp_path: Path) -> None:
    result = run_cli("generate", "Test topic", "--out", str(tmp_path), "--voice-backend", "none")
    assert result.returncode == 0, result.stderr
    (job,) = job_folders(tmp_path)
    assert read_json(job / "job.json")["voice"]["backend"] == "none"
    assert not list(job.glob("scenes/*/narration.json")) and not (tmp_path / SPEECH_CACHE_PREFIX).exists()
    code_prompt = next(r for r in fake_llm.requests if r["task"] == "scene-code-1")["messages"][-1]["content"]
    assert "next_section" not in code_prompt
    metadata = read_json(job / "metadata.json")
    assert metadata["narration"]["backend"] == "none" and metadata["narration"]["scenes"] == []

    streams = {s["codec_type"]: s for s in ffprobe(job / "video.mp4")["streams"]}
    duration = float(streams["video"]["duration"])
    assert streams["audio"]["codec_name"] == "aac"
    assert abs(float(streams["audio"]["duration"]) - duration) <= 0.5
    cues = parse_srt((job / "subtitles.srt").read_text())
    chapters = metadata["scenes"]
    assert cues[0][0] == 0.0 and cues[-1][1] <= duration
    assert cues[2][0] == pytest.approx(chapters[1]["start_seconds"], abs=0.002)  # the narration spread
    assert cues[1][1] == pytest.approx(chapters[0]["end_seconds"], abs=0.002)  # over its scene
