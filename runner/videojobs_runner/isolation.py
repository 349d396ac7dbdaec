"""The operating-system sandbox around a render: bubblewrap namespaces, a read allow-list and its own uid."""

from __future__ import annotations

import functools
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import videojobs
import videojobs_runner

INSIDE_WORKDIR = Path("/render")
"""Where the render's work dir is mounted inside the sandbox: its only writable place."""
INSIDE_CODE_DIR = Path("/scene")
"""Where the scene file is mounted, read-only."""
SANDBOX_UID = 65534
"""The uid (and gid) the scene runs as inside the user namespace of an unprivileged runner."""
ROOT_DIR_LINKS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
"""Top-level folders that merged-/usr systems make symlinks into /usr."""
SYSTEM_READS = (
    "/usr",
    "/etc/fonts",
    "/etc/texmf",
    "/etc/alternatives",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/localtime",
    "/var/lib/texmf",
    "/var/cache/fontconfig",
)
"""What rendering reads besides Python and the project: programs, libraries, TeX and fonts."""
TEX_LOCKDOWN = {"openin_any": "p", "openout_any": "p", "shell_escape": "f"}
"""kpathsea settings: TeX reads and writes only below its working dir, and never runs commands."""
PROBE_TIMEOUT_SECONDS = 30.0
PROBE_UID = 65533


class SandboxUnavailableError(RuntimeError):
    """The configured sandbox cannot run on this host."""


@dataclass(frozen=True)
class Launch:
    """A worker command as the OS sandbox runs it."""

    argv: list[str]
    env: dict[str, str]
    host_uid: int | None = None
    """The uid the scene runs as on the host, when the runner had to switch to it (running as root)."""
    wrapped: bool = False
    """Whether a sandbox process stands between: it reports the worker's death by signal N as 128 + N."""


def worker_env(home: Path) -> dict[str, str]:
    """The render's whole environment: a search path, scratch dirs, TeX lockdown, single-threaded math."""
    tmp = home / "tmp"
    return {
        "PATH": os.pathsep.join(dict.fromkeys([str(Path(sys.executable).parent), "/usr/bin", "/bin"])),
        "HOME": str(home),
        "TMPDIR": str(tmp),
        "XDG_CACHE_HOME": str(tmp / "cache"),
        "MPLCONFIGDIR": str(tmp / "matplotlib"),
        "TEXMFOUTPUT": str(home),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        **TEX_LOCKDOWN,
    }


def bwrap_launch(worker_argv: list[str], code_path: Path, workdir: Path, uids: range) -> Launch:
    """`worker_argv` (written for the inside paths) wrapped in bubblewrap.

    The work dir is mounted read-write at INSIDE_WORKDIR, the scene file read-only in INSIDE_CODE_DIR,
    and nothing else is writable or visible beyond the read allow-list. A runner running as root
    switches the scene to a uid of its own from `uids` (RLIMIT_NPROC does not apply to root) and gives
    it the work dir; any other runner maps it to SANDBOX_UID in a new user namespace.
    """
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise SandboxUnavailableError("bubblewrap (bwrap) is not installed")
    env = worker_env(INSIDE_WORKDIR)
    argv = [bwrap, "--die-with-parent", "--new-session", "--clearenv"]
    argv += ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
    argv += _root_links()
    argv += _mounts(
        writable=[(workdir, INSIDE_WORKDIR), (workdir / "tmp", Path("/tmp"))],
        readable=[(Path(source), Path(source)) for source in _readable()],
        code=(code_path, INSIDE_CODE_DIR / code_path.name),
    )
    argv += ["--proc", "/proc", "--dev", "/dev"]
    argv += ["--chdir", str(INSIDE_WORKDIR), "--hostname", "render"]
    argv += [arg for name, value in env.items() for arg in ("--setenv", name, value)]
    host_uid: int | None = None
    if os.geteuid() == 0:
        host_uid = uids[secrets.randbelow(len(uids))]
        own_tree(workdir, host_uid)
        argv += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--", *_drop_to(host_uid)]
    else:
        argv += ["--unshare-user", "--disable-userns", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID)]
        argv += ["--"]
    return Launch(argv=[*argv, *worker_argv], env={}, host_uid=host_uid, wrapped=True)


def _readable() -> Iterator[str]:
    """Every path the render may read: the system allow-list, Python, the venv and the project's code."""
    yield from SYSTEM_READS
    yield from dict.fromkeys(
        [
            sys.base_prefix,
            sys.prefix,
            str(Path(videojobs.__file__).parent),
            str(Path(videojobs_runner.__file__).parent),
        ]
    )


def _mounts(
    writable: list[tuple[Path, Path]], readable: list[tuple[Path, Path]], code: tuple[Path, Path]
) -> list[str]:
    """bwrap arguments for the binds, writable ones first so that the read allow-list layers over them.

    A venv or checkout under /tmp stays visible although the render's own /tmp covers the host's. Every
    folder above a mount point is made traversable (bwrap would make it 0700, closed to a switched uid),
    except the writable mount points themselves, which keep their owner and mode.
    """
    arguments: list[str] = []
    made = {Path("/"), *(target for _, target in writable)}
    binds = [("--bind", *pair) for pair in writable]
    binds += [("--ro-bind-try", *pair) for pair in readable]
    binds += [("--ro-bind", *code)]
    for option, source, target in binds:
        for folder in reversed(target.parents):  # from the top down
            if folder not in made:
                made.add(folder)
                arguments += ["--perms", "0755", "--dir", str(folder)]
        arguments += [option, str(source), str(target)]
    return arguments


def _root_links() -> list[str]:
    """bwrap arguments recreating /bin, /lib and friends: links into /usr, or read-only binds."""
    arguments: list[str] = []
    for name in ROOT_DIR_LINKS:
        path = Path("/", name)
        if path.is_symlink():
            arguments += ["--symlink", str(path.readlink()), str(path)]
        elif path.is_dir():
            arguments += ["--ro-bind", str(path), str(path)]
    return arguments


def _drop_to(uid: int) -> list[str]:
    """setpriv switching to `uid` with no groups and no capabilities before the worker starts."""
    setpriv = shutil.which("setpriv") or "setpriv"
    return [setpriv, f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--inh-caps=-all", "--"]


def own_tree(root: Path, uid: int) -> None:
    """Give `root` and everything in it (links not followed) to `uid`, so the render can write there."""
    for directory, folders, files in os.walk(root):
        os.chown(directory, uid, uid, follow_symlinks=False)
        for name in (*folders, *files):
            os.chown(Path(directory, name), uid, uid, follow_symlinks=False)


@functools.cache
def check_available() -> None:
    """Start one empty sandbox; raise SandboxUnavailableError saying why when it cannot start."""
    if shutil.which("bwrap") is None:
        raise SandboxUnavailableError(
            "the render sandbox needs bubblewrap: install the Debian package 'bubblewrap'"
        )
    with tempfile.TemporaryDirectory(prefix="videojobs-sandbox-probe-") as name:
        workdir = Path(name)
        (workdir / "tmp").mkdir()
        code = workdir / "probe.py"
        code.write_text("import manim\n")
        argv = [sys.executable, "-I", str(INSIDE_CODE_DIR / code.name)]
        launch = bwrap_launch(argv, code, workdir, range(PROBE_UID, PROBE_UID + 1))
        try:
            result = subprocess.run(
                launch.argv, env=launch.env, capture_output=True, text=True, timeout=PROBE_TIMEOUT_SECONDS
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            raise SandboxUnavailableError(f"bubblewrap could not start: {error}") from error
    if result.returncode != 0:
        reason = (result.stderr.strip().splitlines() or [f"exit {result.returncode}"])[-1]
        raise SandboxUnavailableError(
            f"bubblewrap could not start a sandbox ({reason}); it needs unprivileged user namespaces "
            "(sysctl kernel.unprivileged_userns_clone=1, user.max_user_namespaces > 0) or a root runner"
        )
