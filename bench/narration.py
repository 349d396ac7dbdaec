"""Benchmark: the bundled demo's narration: drift between voice and picture, and the speech cache.

Runs the demo example (committed plans and code, no LLM) twice into one output folder at low quality.
Prints, per scene, the narration blocks, spoken and video seconds and the measured drift, then the
speech synthesis count and time of each run (the second job finds every sentence in the cache).
`--example` runs another example folder instead, e.g. the demo translated into German or Chinese
(bench/examples/pythagorean-theorem-de, -zh; their request.json names the language).
Run: `.venv/bin/python bench/narration.py [--example bench/examples/pythagorean-theorem-zh]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


DEMO = ROOT / "examples" / "pythagorean-theorem"


def run_demo(out: Path, voice: str, example: Path = DEMO) -> tuple[dict[str, Any], dict[str, float]]:
    """One demo job; its metadata and the speech figures (synthesis calls, seconds spent speaking)."""
    from videojobs.contract import GenerationRequest, Phase, Quality, VoiceSpec
    from videojobs.settings import Settings
    from videojobs_runner import tts
    from videojobs_runner.jobs import EXAMPLE_REQUEST_FILE, copy_example, create_job, resolve, run_job

    spent: list[float] = []
    speak = tts.Narrator.narrate

    async def timed_narrate(self: tts.Narrator, *args: Any, **kwargs: Any) -> tts.SceneNarration:
        start = time.perf_counter()
        try:
            return await speak(self, *args, **kwargs)
        finally:
            spent.append(time.perf_counter() - start)

    tts.Narrator.narrate = timed_narrate  # type: ignore[method-assign]
    request = GenerationRequest.model_validate_json((example / EXAMPLE_REQUEST_FILE).read_text())
    request = request.model_copy(update={"quality": Quality.LOW, "voice": VoiceSpec(backend=voice)})
    settings = Settings(output_dir=out)
    record = resolve(request, settings)
    artifacts = create_job(record, settings)
    copy_example(example, artifacts)
    status = asyncio.run(run_job(record, artifacts, settings))
    tts.Narrator.narrate = speak  # type: ignore[method-assign]
    if status.phase is not Phase.SUCCEEDED:
        raise SystemExit(f"demo job failed: {status.error}")
    metadata = json.loads((out / record.id / "metadata.json").read_text())
    return metadata, {"tts_calls": status.usage.tts_calls, "speech_s": sum(spent)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--voice", default="espeak", help="TTS backend (espeak or a litellm speech model)")
    parser.add_argument("--example", type=Path, default=DEMO, help="example folder (plans, code, request)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        first, cold = run_demo(Path(folder), args.voice, args.example)
        _, warm = run_demo(Path(folder), args.voice, args.example)
    narration = first["narration"]
    print(
        f"{args.example.name} ({len(narration['scenes'])} scenes, low quality), language {first['language']},"
        f" voice {narration['backend']} {narration['voice']}:"
    )
    print(f"  {'scene':<6}{'blocks':>7}{'speech s':>10}{'video s':>9}{'track s':>9}{'max drift s':>13}")
    for scene in narration["scenes"]:
        print(
            f"  {scene['index']:<6}{scene['blocks']:>7}{scene['speech_seconds']:>10.3f}"
            f"{scene['video_seconds']:>9.3f}{scene['track_seconds']:>9.3f}{scene['max_drift_seconds']:>13.3f}"
        )
    drift = narration["max_drift_seconds"], narration["mean_drift_seconds"]
    print(f"  job: max drift {drift[0]:.3f} s, mean {drift[1]:.3f} s")
    print(f"  video {first['duration_seconds']:.3f} s, audio codec {first['audio_codec']}")
    print(f"speech, first job:  {cold['tts_calls']:.0f} sentences synthesised, {cold['speech_s']:.2f} s")
    print(f"speech, second job: {warm['tts_calls']:.0f} sentences synthesised, {warm['speech_s']:.2f} s")


if __name__ == "__main__":
    main()
