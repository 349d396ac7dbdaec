"""Combining stage: rendered scenes → one H.264/AAC MP4 with a poster thumbnail, subtitles and chapters."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import math
import os
import re
import shutil
import struct
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import icu

from videojobs.errors import CombiningError
from videojobs.languages import cue_chars, track_language

logger = logging.getLogger(__name__)

STDERR_TAIL_LINES = 20
"""How many of ffmpeg's last stderr lines a CombiningError carries."""

SAMPLE_RATE = 44100
AUDIO_BITRATE = "128k"
LIBX264 = "libx264"
NVENC = "h264_nvenc"
LIBX264_ARGS = ["-c:v", LIBX264, "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p"]
NVENC_ARGS = ["-c:v", NVENC, "-preset", "p4", "-rc", "vbr", "-cq", "23", "-b:v", "0", "-pix_fmt", "yuv420p"]
INSTALL_HINT = "Install ffmpeg (which includes ffprobe), e.g. `apt-get install ffmpeg`."

_nvenc_usable: dict[str, bool] = {}
"""Per ffmpeg binary: whether h264_nvenc is listed and a trial encode with it works (asked once a process)."""


@dataclass(frozen=True)
class MediaInfo:
    """What ffprobe says about a media file."""

    duration_seconds: float
    width: int
    height: int
    fps: float
    video_codec: str
    audio_codec: str | None
    audio_duration_seconds: float | None
    size_bytes: int
    video_duration_seconds: float | None = None
    """The video stream's own duration, where the container states it (else use duration_seconds)."""

    @property
    def scene_duration(self) -> float:
        """How long the picture runs: the video stream's duration, else the container's."""
        return self.video_duration_seconds or self.duration_seconds


@dataclass(frozen=True)
class SceneClip:
    """One rendered scene to put into the video, with the narration it speaks."""

    video: Path
    title: str
    narration: str = ""
    audio: Path | None = None
    """Narration audio laid under the scene (padded or cut to its length); None keeps the clip's own."""
    cues: tuple[Cue, ...] = ()
    """Timed subtitle cues (seconds from the scene's start); empty spreads `narration` over the scene."""


@dataclass(frozen=True)
class Chapter:
    """A scene's place in the combined video."""

    title: str
    start_seconds: float
    end_seconds: float


@dataclass(frozen=True)
class Cue:
    """One subtitle cue."""

    start_seconds: float
    end_seconds: float
    text: str


@dataclass(frozen=True)
class CombinedVideo:
    """The combining stage's artifacts."""

    video: Path
    thumbnail: Path
    subtitles_srt: Path
    subtitles_vtt: Path
    info: MediaInfo
    encoder: str
    chapters: list[Chapter]


# --- subprocess helpers -------------------------------------------------------------------------


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise CombiningError(f"{name} was not found on PATH. {INSTALL_HINT}", suggestion=INSTALL_HINT)
    return path


async def _exec(args: list[str]) -> tuple[int, bytes, bytes]:
    """Run a command, returning (exit code, stdout, stderr); kills it if the caller is cancelled."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except FileNotFoundError as exc:
        message = f"{args[0]} could not be started. {INSTALL_HINT}"
        raise CombiningError(message, suggestion=INSTALL_HINT) from exc
    try:
        stdout, stderr = await proc.communicate()
    except BaseException:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, stdout, stderr


def _tail(stderr: bytes, lines: int = STDERR_TAIL_LINES) -> str:
    text = stderr.decode("utf-8", errors="replace").strip()
    return "\n".join(text.splitlines()[-lines:])


async def _ffmpeg(args: list[str], what: str) -> None:
    """Run ffmpeg with `args`; a failure becomes a CombiningError quoting its stderr's tail."""
    cmd = [_tool("ffmpeg"), "-hide_banner", "-nostdin", "-nostats", "-loglevel", "warning", "-y", *args]
    code, _, stderr = await _exec(cmd)
    if code != 0:
        raise CombiningError(f"ffmpeg failed to {what} (exit code {code}):\n{_tail(stderr)}")


# --- probing ------------------------------------------------------------------------------------


def _float(value: Any) -> float | None:
    try:
        result = float(value)
    except (TypeError, ValueError):
        return None
    return result if math.isfinite(result) and result >= 0 else None


def _rate(value: Any) -> float | None:
    try:
        rate = Fraction(str(value))
    except (ValueError, ZeroDivisionError):
        return None
    return float(rate) if rate > 0 else None


async def probe(path: Path) -> MediaInfo:
    """Duration, picture size, frame rate, codecs and size of a video file, from ffprobe."""
    cmd = [
        _tool("ffprobe"),
        "-v",
        "error",
        "-print_format",
        "json",
        "-show_streams",
        "-show_format",
        str(path),
    ]
    code, stdout, stderr = await _exec(cmd)
    if code != 0:
        raise CombiningError(f"ffprobe could not read {path} (exit code {code}):\n{_tail(stderr)}")
    try:
        data = json.loads(stdout)
    except json.JSONDecodeError as exc:
        raise CombiningError(f"ffprobe gave unreadable output for {path}: {exc}") from exc
    streams: list[dict[str, Any]] = data.get("streams") or []
    fmt: dict[str, Any] = data.get("format") or {}
    video = next(
        (
            s
            for s in streams
            if s.get("codec_type") == "video" and not (s.get("disposition") or {}).get("attached_pic")
        ),
        None,
    )
    if video is None:
        raise CombiningError(f"{path} has no video stream.")
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    video_duration = _float(video.get("duration"))
    audio_duration = _float(audio.get("duration")) if audio is not None else None
    duration = _float(fmt.get("duration")) or max(video_duration or 0.0, audio_duration or 0.0)
    if not duration:
        raise CombiningError(f"ffprobe reports no duration for {path}.")
    fps = _rate(video.get("avg_frame_rate")) or _rate(video.get("r_frame_rate")) or 0.0
    size = int(fmt.get("size") or 0) or await asyncio.to_thread(os.path.getsize, path)
    return MediaInfo(
        duration_seconds=duration,
        width=int(video.get("width") or 0),
        height=int(video.get("height") or 0),
        fps=fps,
        video_codec=str(video.get("codec_name") or "unknown"),
        audio_codec=str(audio.get("codec_name") or "unknown") if audio is not None else None,
        audio_duration_seconds=(audio_duration or duration) if audio is not None else None,
        size_bytes=size,
        video_duration_seconds=video_duration,
    )


# --- encoder choice -----------------------------------------------------------------------------


async def _nvenc_works(ffmpeg: str) -> bool:
    """Whether ffmpeg lists h264_nvenc and can encode one frame with it (cached per process)."""
    cached = _nvenc_usable.get(ffmpeg)
    if cached is not None:
        return cached
    usable = False
    code, stdout, _ = await _exec([ffmpeg, "-hide_banner", "-encoders"])
    if code == 0 and re.search(rf"^\s*V\S*\s+{NVENC}\s", stdout.decode(errors="replace"), re.MULTILINE):
        trial = [
            ffmpeg,
            *("-hide_banner", "-nostdin", "-loglevel", "error"),
            *("-f", "lavfi", "-i", "color=c=black:s=256x256:r=25:d=1"),
            *("-frames:v", "1", *NVENC_ARGS, "-f", "null", "-"),
        ]
        try:
            code, _, stderr = await asyncio.wait_for(_exec(trial), timeout=60)
        except TimeoutError:
            code, stderr = -1, b"timed out"
        usable = code == 0
        if not usable:
            logger.info("h264_nvenc trial encode failed, using libx264: %s", _tail(stderr, 3))
    _nvenc_usable[ffmpeg] = usable
    return usable


async def choose_encoder(*, use_gpu: bool) -> str:
    """h264_nvenc when asked for and it works here, else libx264."""
    if use_gpu and await _nvenc_works(_tool("ffmpeg")):
        return NVENC
    return LIBX264


# --- subtitles ----------------------------------------------------------------------------------

_PARAGRAPH_END = re.compile(r"\n\s*\n")


def _segments(text: str, breaks: icu.BreakIterator) -> list[str]:
    """`text` cut at each boundary `breaks` finds (each piece keeps its trailing spaces)."""
    breaks.setText(text)
    bounds = [0, *breaks]
    return [text[start:end] for start, end in itertools.pairwise(bounds)]


def _locale(tag: str) -> icu.Locale:
    """ICU's locale for a BCP 47 tag, with the sentence breaks after known abbreviations suppressed."""
    return icu.Locale(f"{icu.Locale.forLanguageTag(tag).getName()}@ss=standard")


def sentences(text: str, tag: str = "en") -> list[str]:
    """Narration split into whole sentences by ICU's rules for the language, whitespace normalised."""
    breaks = icu.BreakIterator.createSentenceInstance(_locale(tag))
    return [
        sentence
        for paragraph in _PARAGRAPH_END.split(text.strip())
        for raw in _segments(" ".join(paragraph.split()), breaks)
        if (sentence := raw.strip())
    ]


def split_sentences(text: str, tag: str = "en") -> list[str]:
    """Narration split into sentences, and overlong ones into chunks at line-break opportunities (cues)."""
    limit = cue_chars(tag)
    lines = icu.BreakIterator.createLineInstance(_locale(tag))
    return [piece for sentence in sentences(text, tag) for piece in _chunk(sentence, limit, lines)]


def _chunk(sentence: str, limit: int, lines: icu.BreakIterator) -> list[str]:
    """A sentence cut into about equal chunks of at most about `limit` characters, where lines may break."""
    if len(sentence) <= limit:
        return [sentence]
    count = math.ceil(len(sentence) / limit)
    target = len(sentence) / count
    chunks: list[str] = []
    current = ""
    for piece in _segments(sentence, lines):
        if current and len((current + piece).rstrip()) > target and len(chunks) < count - 1:
            chunks.append(current.rstrip())
            current = ""
        current += piece
    chunks.append(current.rstrip())
    return chunks


def build_cues(spans: list[tuple[float, float, str]], tag: str = "en") -> list[Cue]:
    """Cues for (start, end, narration) spans: each span's sentences share its time by their length."""
    cues: list[Cue] = []
    for start, end, narration in spans:
        sentences = split_sentences(narration, tag)
        if not sentences or end <= start:
            continue
        total = sum(len(s) for s in sentences)
        elapsed = 0
        for index, sentence in enumerate(sentences):
            cue_start = start + (end - start) * elapsed / total
            elapsed += len(sentence)
            cue_end = end if index == len(sentences) - 1 else start + (end - start) * elapsed / total
            cues.append(Cue(start_seconds=cue_start, end_seconds=cue_end, text=sentence))
    return cues


def _timestamp(seconds: float, separator: str) -> str:
    # Floor to the millisecond (with a little slack for float error) so a cue never ends past its span.
    millis = max(0, math.floor(seconds * 1000 + 1e-6))
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, ms = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{ms:03d}"


def to_srt(cues: list[Cue]) -> str:
    """SubRip text for the cues (`00:00:01,500` timestamps)."""
    blocks = [
        f"{n}\n{_timestamp(c.start_seconds, ',')} --> {_timestamp(c.end_seconds, ',')}\n{c.text}\n"
        for n, c in enumerate(cues, start=1)
    ]
    return "\n".join(blocks)


def _vtt_text(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_vtt(cues: list[Cue], tag: str = "en") -> str:
    """WebVTT text for the cues (`00:00:01.500` timestamps), its header naming the language."""
    blocks = [
        f"{_timestamp(c.start_seconds, '.')} --> {_timestamp(c.end_seconds, '.')}\n{_vtt_text(c.text)}\n"
        for c in cues
    ]
    return "\n".join([f"WEBVTT\nLanguage: {tag}\n", *blocks])


# --- MP4 layout ---------------------------------------------------------------------------------


def top_level_boxes(path: Path) -> list[str]:
    """The types of an MP4 file's top-level boxes, in file order."""
    boxes: list[str] = []
    with path.open("rb") as f:
        f.seek(0, os.SEEK_END)
        end = f.tell()
        offset = 0
        while offset + 8 <= end:
            f.seek(offset)
            size, kind = struct.unpack(">I4s", f.read(8))
            if size == 1:
                (size,) = struct.unpack(">Q", f.read(8))
            elif size == 0:
                size = end - offset
            boxes.append(kind.decode("latin-1"))
            if size < 8:
                break
            offset += size
    return boxes


def moov_before_mdat(path: Path) -> bool:
    """Whether the MP4's index (moov) precedes its media data, so it can play while downloading."""
    boxes = top_level_boxes(path)
    return "moov" in boxes and "mdat" in boxes and boxes.index("moov") < boxes.index("mdat")


# --- combining ----------------------------------------------------------------------------------


def _discard(path: Path) -> None:
    path.unlink(missing_ok=True)


def _nonempty_file(path: Path) -> bool:
    return path.is_file() and path.stat().st_size > 0


def _even(n: int) -> int:
    return max(2, n - n % 2)


def _seconds(value: float) -> str:
    return f"{value:.6f}"


def _build_command(
    clips: list[SceneClip], infos: list[MediaInfo], encoder_args: list[str], output: Path
) -> list[str]:
    width, height = _even(infos[0].width), _even(infos[0].height)
    fps = Fraction(infos[0].fps or 30).limit_denominator(1001)
    inputs: list[str] = []
    chains: list[str] = []
    labels: list[str] = []
    index = 0
    for n, (clip, info) in enumerate(zip(clips, infos, strict=True)):
        duration = _seconds(info.scene_duration)
        inputs += ["-i", str(clip.video)]
        video_index = index
        index += 1
        if clip.audio is not None:
            inputs += ["-i", str(clip.audio)]
            audio_source = f"{index}:a:0"
            index += 1
        elif info.audio_codec is not None:
            audio_source = f"{video_index}:a:0"
        else:
            inputs += ["-f", "lavfi", "-t", duration, "-i", f"anullsrc=r={SAMPLE_RATE}:cl=stereo"]
            audio_source = f"{index}:a:0"
            index += 1
        video_filters: list[str] = []
        if (info.width, info.height) != (width, height):
            video_filters += [
                f"scale={width}:{height}:force_original_aspect_ratio=decrease",
                f"pad={width}:{height}:(ow-iw)/2:(oh-ih)/2:color=black",
            ]
        video_filters += [
            "setsar=1",
            f"fps={fps}",
            "format=yuv420p",
            f"trim=duration={duration}",
            "setpts=PTS-STARTPTS",
        ]
        audio_filters = [
            "asetpts=PTS-STARTPTS",
            f"aresample={SAMPLE_RATE}",
            f"aformat=sample_fmts=fltp:sample_rates={SAMPLE_RATE}:channel_layouts=stereo",
            f"atrim=end={duration}",
            f"apad=whole_dur={duration}",
        ]
        chains.append(f"[{video_index}:v:0]{','.join(video_filters)}[v{n}]")
        chains.append(f"[{audio_source}]{','.join(audio_filters)}[a{n}]")
        labels.append(f"[v{n}][a{n}]")
    chains.append(f"{''.join(labels)}concat=n={len(clips)}:v=1:a=1[vout][aout]")
    return [
        *inputs,
        "-filter_complex",
        ";".join(chains),
        *("-map", "[vout]", "-map", "[aout]"),
        *encoder_args,
        *("-c:a", "aac", "-b:a", AUDIO_BITRATE, "-ar", str(SAMPLE_RATE), "-ac", "2"),
        *("-movflags", "+faststart", "-f", "mp4", str(output)),
    ]


def ffmetadata(chapters: list[Chapter]) -> str:
    """The chapters in ffmpeg's FFMETADATA1 text format (milliseconds; special characters escaped)."""
    lines = [";FFMETADATA1"]
    for chapter in chapters:
        title = re.sub(r"([=;#\\\n])", r"\\\1", chapter.title)
        start, end = round(chapter.start_seconds * 1000), round(chapter.end_seconds * 1000)
        lines += ["[CHAPTER]", "TIMEBASE=1/1000", f"START={start}", f"END={end}", f"title={title}"]
    return "\n".join(lines) + "\n"


async def finish(video: Path, output: Path, *, tag: str, chapters: list[Chapter], srt: Path | None) -> Path:
    """A copy of `video` (streams copied, still fast-start) with its audio tagged with the language, and
    `chapters` as markers and the `srt` subtitles as a tagged mov_text track where given."""
    code = track_language(tag)
    inputs = ["-i", str(video)]
    maps = ["-map", "0:v", "-map", "0:a"]
    if chapters:
        metadata = output.with_suffix(".ffmetadata")
        await asyncio.to_thread(metadata.write_text, ffmetadata(chapters), encoding="utf-8")
        maps += ["-map_chapters", str(inputs.count("-i"))]
        inputs += ["-f", "ffmetadata", "-i", str(metadata)]
    if srt is not None:
        subtitles = ["-c:s", "mov_text", "-metadata:s:s:0", f"language={code}"]
        maps += ["-map", f"{inputs.count('-i')}:s", *subtitles]
        inputs += ["-i", str(srt)]
    await _ffmpeg(
        [
            *inputs,
            *maps,
            *("-map_metadata", "0", "-c:v", "copy", "-c:a", "copy", "-metadata:s:a:0", f"language={code}"),
            *("-movflags", "+faststart", "-f", "mp4", str(output)),
        ],
        "tag the tracks and mark the chapters",
    )
    return output


async def extract_frame(video: Path, at_seconds: float, output: Path, *, width: int | None = None) -> Path:
    """The frame of `video` at `at_seconds` as a JPEG at `output`, scaled to `width` pixels wide if given."""
    await asyncio.to_thread(output.unlink, missing_ok=True)
    scale = ["-vf", f"scale={width}:-2"] if width is not None else []
    await _ffmpeg(
        [
            *("-ss", _seconds(at_seconds), "-i", str(video), *scale),
            *("-frames:v", "1", "-q:v", "3", "-update", "1", str(output)),
        ],
        f"extract a frame of {video.name}",
    )
    if not await asyncio.to_thread(_nonempty_file, output):
        raise CombiningError(f"ffmpeg wrote no frame of {video} at {at_seconds:.3f} s.")
    return output


async def combine_scenes(
    clips: list[SceneClip], out_dir: Path, *, use_gpu: bool, tag: str = "en"
) -> CombinedVideo:
    """Join the scene clips into out_dir/video.mp4 (H.264/AAC), with thumbnail, subtitles and chapters."""
    if not clips:
        raise CombiningError("There are no rendered scenes to combine.")
    for clip in clips:
        for path in (clip.video, clip.audio):
            if path is not None and not path.is_file():
                raise CombiningError(f"Scene {clip.title!r}: {path} does not exist.")
    _tool("ffmpeg")
    _tool("ffprobe")
    await asyncio.to_thread(out_dir.mkdir, parents=True, exist_ok=True)
    infos = list(await asyncio.gather(*(probe(clip.video) for clip in clips)))

    video = out_dir / "video.mp4"
    partial = out_dir / "video.partial.mp4"
    encoder = await choose_encoder(use_gpu=use_gpu)
    try:
        try:
            args = NVENC_ARGS if encoder == NVENC else LIBX264_ARGS
            await _ffmpeg(_build_command(clips, infos, args, partial), "combine the scenes")
        except CombiningError:
            if encoder != NVENC:
                raise
            logger.warning("h264_nvenc failed on the real encode; retrying with libx264", exc_info=True)
            encoder = LIBX264
            await _ffmpeg(_build_command(clips, infos, LIBX264_ARGS, partial), "combine the scenes")
    except BaseException:
        _discard(partial)  # failed or cancelled: leave no half-written file behind
        raise
    await asyncio.to_thread(partial.replace, video)
    info = await probe(video)
    if not await asyncio.to_thread(moov_before_mdat, video):
        logger.warning("%s is not fast-start (moov after mdat): it cannot play while downloading", video)

    chapters: list[Chapter] = []
    position = 0.0
    for clip, clip_info in zip(clips, infos, strict=True):
        start = round(min(position, info.duration_seconds), 3)
        position += clip_info.scene_duration
        chapters.append(Chapter(clip.title, start, round(min(position, info.duration_seconds), 3)))

    thumbnail = out_dir / "thumbnail.jpg"
    first = chapters[0] if len(chapters) > 1 else Chapter("", 0.0, info.duration_seconds)
    await extract_frame(video, (first.start_seconds + first.end_seconds) / 2, thumbnail)

    scenes = list(zip(chapters, clips, strict=True))
    timed = [
        Cue(
            chapter.start_seconds + cue.start_seconds,
            min(chapter.start_seconds + cue.end_seconds, chapter.end_seconds),
            cue.text,
        )
        for chapter, clip in scenes
        for cue in clip.cues
        if chapter.start_seconds + cue.start_seconds < chapter.end_seconds
    ]
    spread = build_cues(
        [(c.start_seconds, c.end_seconds, clip.narration) for c, clip in scenes if not clip.cues], tag
    )
    cues = sorted([*timed, *spread], key=lambda cue: cue.start_seconds)
    srt = out_dir / "subtitles.srt"
    vtt = out_dir / "subtitles.vtt"
    await asyncio.to_thread(srt.write_text, to_srt(cues), encoding="utf-8")
    await asyncio.to_thread(vtt.write_text, to_vtt(cues, tag), encoding="utf-8")
    return CombinedVideo(
        video=video,
        thumbnail=thumbnail,
        subtitles_srt=srt,
        subtitles_vtt=vtt,
        info=info,
        encoder=encoder,
        chapters=chapters,
    )
