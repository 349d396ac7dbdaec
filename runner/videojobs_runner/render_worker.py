"""Render worker, run inside the OS sandbox: render one Manim scene and print a JSON result line.

Its audit hook and the static check are feedback for the model (a clear refusal instead of a puzzling
failure), not the boundary: bubblewrap is (videojobs_runner.isolation).
"""

from __future__ import annotations

import argparse
import errno
import importlib.util
import json
import os
import re
import resource
import shutil
import sys
import tempfile
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from videojobs.contract import QUALITY_PRESETS, Quality
from videojobs_runner.layout import LayoutProbe
from videojobs_runner.pacing import Pacer

ALLOWED_EXECUTABLES = frozenset({"latex", "pdflatex", "xelatex", "dvisvgm", "typst"})
"""Programs the scene process may start (Manim needs LaTeX; not lualatex, whose Lua reaches files)."""

BLOCKED_PREFIXES = ("socket.", "ctypes.", "os.fork", "os.system", "os.kill", "os.putenv", "os.unsetenv")
"""Audit events refused outright: network, FFI, forking, signalling other processes, changing the env."""

EXEC_EVENTS = {"subprocess.Popen": 0, "os.posix_spawn": 0, "os.exec": 0, "os.spawn": 1}
"""Audit events that start a program, with the index of the executable among their arguments."""

PATH_EVENTS = {
    "os.mkdir": (0,),
    "os.remove": (0,),
    "os.rmdir": (0,),
    "os.rename": (0, 1),
    "os.link": (0, 1),
    "os.symlink": (1,),
    "os.truncate": (0,),
    "os.chmod": (0,),
    "os.chown": (0,),
    "os.utime": (0,),
    "shutil.rmtree": (0,),
}
"""Audit events that change the file system, with the indexes of the paths they change."""

UNSAFE_TEX_OPTIONS = frozenset({"shell-escape", "shell-restricted", "enable-write18", "cnf-line"})
"""Compiler options that would let TeX run commands or change its settings (names without dashes)."""

WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC
ALWAYS_WRITABLE = frozenset({"/dev/null"})
MIN_STILL_SECONDS = 1.0
"""How long a scene that only shows a still picture is held when it has no narration."""
SCENE_MODULE = "videojobs_scene"
SCENE_FRAME_LIMIT = 8
TEX_SNIPPET_LINES = 20
TEX_ERROR_CONTEXT = 5
TEX_LOCATION = re.compile(r"l\.\d+ ")
DVISVGM_MARKER = re.compile(r"\\special\{dvisvgm:raw [^}]*\}")
LATEX_FAILURE = re.compile(r"error converting to \w+.*log file: (?P<log>\S+\.log)", re.DOTALL)


class SandboxViolation(RuntimeError):
    """The scene did something the render sandbox forbids (not an OSError, so no `exist_ok` swallows it)."""


def main(argv: Sequence[str] | None = None) -> int:
    """Render the scene named on the command line; print its video and duration, or its error, as JSON."""
    args = _parse_args(argv)
    resource.setrlimit(resource.RLIMIT_NPROC, (args.max_processes, args.max_processes))
    code_path = Path(args.code).resolve()
    media_dir = Path(args.media_dir).resolve()
    media_dir.mkdir(parents=True, exist_ok=True)
    writable = (str(media_dir), os.path.realpath(tempfile.gettempdir()))
    import manim  # noqa: F401  # heavy imports happen before the hook, so they are never refused

    sys.dont_write_bytecode = True  # the scene's folder is read-only
    sys.addaudithook(make_audit_hook(writable))
    probe = LayoutProbe(args.layout_margin)
    try:
        video, duration, blocks = render(
            code_path,
            args.scene_class,
            Quality(args.quality),
            media_dir,
            args.no_cache,
            args.narration,
            probe.attach,
        )
    except BaseException as error:
        traceback.print_exc()
        _emit({"kind": error_kind(error), "error": describe_error(error, code_path)})
        return 1
    layout = [violation.model_dump(mode="json") for violation in probe.violations()]
    _emit(
        {
            "video": str(video.relative_to(media_dir)),
            "duration": duration,
            "blocks": blocks,
            "layout": layout,
            "harness_faults": probe.faults,
        }
    )
    return 0


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The worker's command line."""
    parser = argparse.ArgumentParser(prog="videojobs_runner.render_worker")
    parser.add_argument("scene_class")
    parser.add_argument("quality", choices=[quality.value for quality in Quality])
    parser.add_argument("--code", required=True, help="The scene file.")
    parser.add_argument("--media-dir", required=True, help="Where Manim writes (inside the work dir).")
    parser.add_argument("--no-cache", action="store_true")
    parser.add_argument(
        "--narration",
        type=_seconds_list,
        default=[],
        help="Spoken seconds of each narration segment, a,b,...",
    )
    parser.add_argument("--layout-margin", type=float, default=0.0)
    parser.add_argument("--max-processes", type=int, default=256, help="RLIMIT_NPROC of the render.")
    return parser.parse_args(argv)


def _seconds_list(text: str) -> list[float]:
    """Comma-separated seconds."""
    return [float(part) for part in text.split(",") if part]


def _emit(payload: dict[str, object]) -> None:
    """Print the final JSON line the parent reads."""
    sys.stdout.flush()
    print(json.dumps(payload), flush=True)


def render(
    code_path: Path,
    scene_class: str,
    quality: Quality,
    media_dir: Path,
    no_cache: bool,
    narration: Sequence[float] = (),
    prepare: Callable[[Any], None] = lambda scene: None,
) -> tuple[Path, float, list[float]]:
    """Render the scene class in-process, paced to the narration (`prepare` sees the scene first).

    Returns the movie's path, its duration and the lengths of its narration blocks.
    """
    from manim import tempconfig

    resolution = QUALITY_PRESETS[quality]
    options = {
        "pixel_width": resolution.width,
        "pixel_height": resolution.height,
        "frame_rate": resolution.fps,
        "media_dir": str(media_dir),
        "disable_caching": no_cache,
        "preview": False,
        "progress_bar": "none",
        "verbosity": "WARNING",
        "write_to_movie": True,
    }
    module = load_module(code_path)
    with tempconfig(options):
        scene = getattr(module, scene_class)()
        prepare(scene)
        pacer = Pacer(scene, narration) if narration else None
        if pacer is None:
            hold_still(scene)
        scene.render()
        video = Path(scene.renderer.file_writer.movie_file_path)
        duration = float(getattr(scene.renderer, "time", 0.0)) or probe_duration(video)
        blocks = pacer.block_seconds() if pacer else []
    return video, duration, blocks


def hold_still(scene: Any) -> None:
    """Make a scene that only shows a still picture (no play, no wait) a clip of MIN_STILL_SECONDS.

    Manim writes such a scene as an image; the pipeline needs a clip to lay narration under.
    """
    construct: Callable[[], None] = scene.construct

    def construct_then_hold() -> None:
        construct()
        if scene.renderer.num_plays == 0:
            scene.wait(MIN_STILL_SECONDS)

    scene.construct = construct_then_hold


def load_module(code_path: Path) -> ModuleType:
    """Import the scene file as a fresh module."""
    spec = importlib.util.spec_from_file_location(SCENE_MODULE, code_path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {code_path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def probe_duration(video: Path) -> float:
    """The duration of a video file in seconds, read from its container (0 when there is none)."""
    import av

    if not video.is_file():
        return 0.0
    with av.open(str(video)) as container:
        return float(container.duration or 0) / 1_000_000


def make_audit_hook(writable: tuple[str, ...]) -> Callable[[str, tuple[Any, ...]], None]:
    """An audit hook refusing network, FFI, foreign programs and writes outside the `writable` dirs."""
    roots = tuple(os.path.realpath(root) for root in writable)

    def hook(event: str, args: tuple[Any, ...]) -> None:
        reason = refusal(event, args, roots)
        if reason:
            raise SandboxViolation(f"blocked by the render sandbox: {reason}")

    return hook


def refusal(event: str, args: tuple[Any, ...], roots: tuple[str, ...]) -> str:
    """Why the audit event must be refused, or '' when it may go ahead."""
    if event.startswith(BLOCKED_PREFIXES):
        return event
    if event == "open":
        return _open_refusal(args, roots)
    if event in EXEC_EVENTS:
        return _exec_refusal(event, args, roots)
    for index in PATH_EVENTS.get(event, ()):
        if index < len(args) and not _is_writable(args[index], roots):
            return f"{event} on {args[index]!r} (only the media and temp dirs may be changed)"
    return ""


def _open_refusal(args: tuple[Any, ...], roots: tuple[str, ...]) -> str:
    """Why an `open` event must be refused: writing outside the writable dirs."""
    path, _mode, flags = args
    writing = not isinstance(flags, int) or bool(flags & WRITE_FLAGS)
    if not writing or isinstance(path, int) or _is_writable(path, roots):
        return ""
    return f"writing to {path!r} (only the media and temp dirs are writable)"


def _is_writable(path: object, roots: tuple[str, ...]) -> bool:
    """Whether `path` is absolute and resolves into one of the writable `roots`."""
    if not isinstance(path, str | bytes | os.PathLike):
        return False
    candidate = Path(os.fsdecode(path))
    if not candidate.is_absolute():
        return False
    real = os.path.realpath(candidate)
    return real in ALWAYS_WRITABLE or any(real == root or real.startswith(root + os.sep) for root in roots)


def _exec_refusal(event: str, args: tuple[Any, ...], roots: tuple[str, ...]) -> str:
    """Why starting a program must be refused: not a TeX tool, a tool from a writable dir, or unsafe."""
    executable = args[EXEC_EVENTS[event]]
    name = os.fsdecode(executable) if isinstance(executable, bytes | str | os.PathLike) else ""
    if Path(name).name not in ALLOWED_EXECUTABLES:
        return f"starting {name or executable!r} (only LaTeX tools may run)"
    argv, env = args[EXEC_EVENTS[event] + 1], args[-1]
    if env is not None and dict(env) != dict(os.environ):
        return f"starting {name} with a modified environment"
    if any(_option_name(arg) in UNSAFE_TEX_OPTIONS for arg in argv or ()):
        return f"starting {name} with shell escape"
    resolved = shutil.which(name)
    if resolved is None or _is_writable(Path(resolved).absolute(), roots):
        return f"starting {name} from {resolved!r} (not a system install)"
    return ""


def _option_name(argument: object) -> str:
    """`shell-escape` for `--shell-escape` or `-shell-escape=1`; '' for an argument that is no option."""
    text = os.fsdecode(argument) if isinstance(argument, str | bytes | os.PathLike) else ""
    return text.lstrip("-").split("=", 1)[0] if text.startswith("-") else ""


def error_kind(error: BaseException) -> str:
    """How the parent should classify the failure: memory, process_limit, latex or error."""
    causes = _causes(error)
    if any(_out_of_memory(cause) for cause in causes):
        return "memory"
    if any(_too_many_tasks(cause) for cause in causes):
        return "process_limit"
    if LATEX_FAILURE.search(str(error)):
        return "latex"
    return "error"


def _causes(error: BaseException) -> list[BaseException]:
    """The exception and those it was raised from or while handling."""
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _too_many_tasks(error: BaseException) -> bool:
    """A process or thread that could not start: fork's EAGAIN, or Python's "can't start new thread"."""
    thread_refused = isinstance(error, RuntimeError) and "can't start new thread" in str(error)
    return thread_refused or getattr(error, "errno", None) == errno.EAGAIN


def _out_of_memory(error: BaseException) -> bool:
    """A MemoryError, or an OS error from a failed allocation (the address-space limit)."""
    return isinstance(error, MemoryError) or getattr(error, "errno", None) == errno.ENOMEM


def describe_error(error: BaseException, code_path: Path) -> str:
    """A short account of the failure for the model: scene frames, the exception and any LaTeX errors."""
    lines = [*scene_frames(error, code_path), *traceback.format_exception_only(type(error), error)]
    match = LATEX_FAILURE.search(str(error))
    if match:
        lines = [latex_report(Path(match["log"])), "", *lines]
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines).strip()


def scene_frames(error: BaseException, code_path: Path) -> list[str]:
    """Traceback lines for the frames in the scene file, plus the innermost frame if it lies elsewhere."""
    frames = traceback.extract_tb(error.__traceback__)
    picked = [frame for frame in frames if Path(frame.filename) == code_path][-SCENE_FRAME_LIMIT:]
    if frames and (not picked or frames[-1] is not picked[-1]):
        picked.append(frames[-1])
    if not picked:
        return []
    return ["Traceback (scene file frames):\n", *traceback.format_list(picked)]


def latex_report(log_path: Path) -> str:
    """'LaTeX could not compile' with the TeX snippet and the '!' error lines of the compiler log."""
    tex_path = log_path.with_suffix(".tex")
    snippet = _tex_body(tex_path.read_text(errors="replace")) if tex_path.exists() else "(TeX source missing)"
    errors = _tex_errors(log_path.read_text(errors="replace")) if log_path.exists() else []
    return "\n".join(
        [
            "LaTeX could not compile this snippet:",
            snippet,
            "LaTeX errors:",
            *(errors or ["(no '!' lines in the LaTeX log)"]),
        ]
    )


def _tex_body(tex: str) -> str:
    """What the scene asked LaTeX to typeset: the document body without Manim's dvisvgm markers."""
    body = tex.split("\\begin{document}", 1)[-1].split("\\end{document}", 1)[0]
    lines = DVISVGM_MARKER.sub("", body).strip().splitlines()
    return "\n".join(lines[:TEX_SNIPPET_LINES])


def _tex_errors(log: str) -> list[str]:
    """Each '!' line of a TeX log with the lines after it, up to the 'l.N' line that says where."""
    lines = log.splitlines()
    picked: list[str] = []
    for index, line in enumerate(lines):
        if line.startswith("!"):
            context = lines[index : index + TEX_ERROR_CONTEXT]
            end = next((i for i, text in enumerate(context) if TEX_LOCATION.match(text)), len(context) - 1)
            picked.extend(text.rstrip() for text in context[: end + 1])
    return picked


if __name__ == "__main__":
    raise SystemExit(main())
