"""A real Kubernetes control plane for tests: the session-scoped `k8s_cluster` fixture.

`hack/test-cluster up` runs etcd, kube-apiserver (RBAC, TokenRequest), kube-controller-manager,
kube-scheduler and KWOK (simulated GPU nodes; a Job's pods become Running, then Succeeded) as local
processes on 127.0.0.1. The binaries are built from upstream Go modules on first use (a long, one-off
build, cached under `${XDG_CACHE_HOME:-~/.cache}/videojobs/k8s-<version>`); a missing binary is built,
never a reason to skip. Mark tests that use it with `@pytest.mark.k8s`.

Where the cluster lives:
- `TEST_CLUSTER_DIR` set: that state dir. A cluster already up there (e.g. from
  `eval "$(hack/test-cluster up)"`) is reused and left running; one the session started is torn down.
- otherwise: a fresh state dir for this session, torn down at the end, so concurrent sessions don't
  share (or stop) each other's cluster.
- `KEEP_TEST_CLUSTER=1`: never torn down; without `TEST_CLUSTER_DIR` the script's default state dir
  is used, so the next session reuses it (stop it with `hack/test-cluster down`).

`kueue_cluster` is a second cluster of its own (Kueue's controller manager and webhooks added:
`TEST_CLUSTER_KUEUE=1`), so that Kueue never meets the other tests' Jobs, which play Kueue themselves.
Its tests (`@pytest.mark.kueue`) run when Kueue is built (`hack/test-cluster build-kueue`) or
`TEST_CLUSTER_KUEUE=1` asks for it (then it is built if needed); otherwise they are skipped.
`TEST_KUEUE_CLUSTER_DIR` names its state dir (reused if up there, like `TEST_CLUSTER_DIR`).
"""

from __future__ import annotations

import os
import subprocess
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "hack" / "test-cluster"
# A cold build compiles Kubernetes from source (tens of minutes on 2 cores); `up` alone takes ~20 s.
UP_TIMEOUT_SECONDS = 5400
DOWN_TIMEOUT_SECONDS = 120


@dataclass
class K8sCluster:
    """A running test cluster: its admin kubeconfig and the dir holding kubectl, helm, etc."""

    kubeconfig: Path
    bin_dir: Path
    state_dir: Path
    _env: dict[str, str] = field(repr=False, default_factory=dict)

    @property
    def server(self) -> str:
        """The API server URL (https://127.0.0.1:<port>)."""
        ports = dict(
            line.split("=", 1) for line in (self.state_dir / "ports.env").read_text().splitlines() if line
        )
        return f"https://127.0.0.1:{ports['API_PORT']}"

    @property
    def ca_cert(self) -> Path:
        """The cluster CA certificate (it signed the API server's serving cert)."""
        return self.state_dir / "pki" / "ca.crt"

    def env(self) -> dict[str, str]:
        """os.environ plus KUBECONFIG and PATH (bin dir first): for subprocesses that talk to the cluster."""
        return dict(self._env)

    def token(self, namespace: str, account: str, duration: str = "2h") -> str:
        """A TokenRequest token of ServiceAccount `account` in `namespace`."""
        return self.kubectl(
            "-n", namespace, "create", "token", account, f"--duration={duration}"
        ).stdout.strip()

    def token_kubeconfig(self, namespace: str, account: str, path: Path) -> Path:
        """Write a kubeconfig to `path` whose only credential is a TokenRequest token of `account`."""
        entry = {"server": self.server, "certificate-authority": str(self.ca_cert)}
        path.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "test", "cluster": entry}],
                    "users": [{"name": account, "user": {"token": self.token(namespace, account)}}],
                    "contexts": [{"name": "test", "context": {"cluster": "test", "user": account}}],
                    "current-context": "test",
                }
            )
        )
        return path

    def kubectl(
        self,
        *args: str,
        input: str | None = None,
        check: bool = True,
        token: str | None = None,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl as cluster-admin (or, with `token`, as whoever that bearer token belongs to).

        With check=True (the default) a non-zero exit fails the test with kubectl's stderr.
        """
        command = [str(self.bin_dir / "kubectl")]
        if token is None:
            command += ["--kubeconfig", str(self.kubeconfig)]
        else:
            # No client certificate: the token is the only credential the API server sees.
            command += [
                "--kubeconfig",
                os.devnull,
                "--server",
                self.server,
                "--certificate-authority",
                str(self.ca_cert),
                "--token",
                token,
            ]
        command += list(args)
        done = subprocess.run(
            command, input=input, capture_output=True, text=True, timeout=timeout, env=self._env, check=False
        )
        if check and done.returncode != 0:
            pytest.fail(
                f"kubectl {' '.join(args)} failed (exit {done.returncode}):\n{done.stderr}{done.stdout}",
                pytrace=False,
            )
        return done


def _run_script(command: str, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            [str(SCRIPT), command], capture_output=True, text=True, env=env, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.fail(f"{SCRIPT} {command}: {exc}", pytrace=False)


def _parse_exports(stdout: str) -> dict[str, str]:
    """The `export NAME=value` lines `hack/test-cluster up` prints."""
    exports = {}
    for line in stdout.splitlines():
        if line.startswith("export ") and "=" in line:
            name, value = line.removeprefix("export ").split("=", 1)
            exports[name] = value
    return exports


def start_cluster(state_dir: Path | None, **extra_env: str) -> tuple[K8sCluster, bool]:
    """Run `hack/test-cluster up`; returns the cluster and whether it was already up."""
    env = dict(os.environ) | extra_env
    if state_dir is not None:
        env["TEST_CLUSTER_DIR"] = str(state_dir)
    was_up = _run_script("status", env, 60).returncode == 0
    done = _run_script("up", env, UP_TIMEOUT_SECONDS)
    if done.returncode != 0:
        # A failed `up` stops what it started; one more try keeps a passing hiccup of a loaded CI
        # machine from failing every k8s test of the session (the session fixture's error is cached).
        warnings.warn(f"{SCRIPT} up failed once, trying again:\n{done.stderr[-3000:]}", stacklevel=1)
        done = _run_script("up", env, UP_TIMEOUT_SECONDS)
    exports = _parse_exports(done.stdout)
    if done.returncode != 0 or "KUBECONFIG" not in exports:
        pytest.fail(
            f"{SCRIPT} up failed (exit {done.returncode}); the k8s tests need the test cluster.\n"
            f"{done.stderr[-6000:]}",
            pytrace=False,
        )
    kubeconfig = Path(exports["KUBECONFIG"])
    bin_dir = Path(exports["PATH"].split(":", 1)[0])
    env["KUBECONFIG"] = str(kubeconfig)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env["TEST_CLUSTER_DIR"] = str(kubeconfig.parent)
    return K8sCluster(kubeconfig=kubeconfig, bin_dir=bin_dir, state_dir=kubeconfig.parent, _env=env), was_up


def stop_cluster(cluster: K8sCluster) -> None:
    done = _run_script("down", cluster.env(), DOWN_TIMEOUT_SECONDS)
    if done.returncode != 0:
        pytest.fail(f"{SCRIPT} down failed (exit {done.returncode}):\n{done.stderr[-4000:]}", pytrace=False)


@pytest.fixture(scope="session")
def k8s_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[K8sCluster]:
    """A real control plane (see the module docstring) for the whole session."""
    keep = os.environ.get("KEEP_TEST_CLUSTER") == "1"
    if os.environ.get("TEST_CLUSTER_DIR"):
        state_dir: Path | None = Path(os.environ["TEST_CLUSTER_DIR"])
    elif keep:
        state_dir = None  # the script's default dir, reused by later sessions
    else:
        # Short path under the session's base temp dir (the script adds .lock next to it).
        state_dir = tmp_path_factory.mktemp("k8s") / "cluster"
    cluster, was_up = start_cluster(state_dir)
    yield cluster
    if keep or was_up:
        return
    stop_cluster(cluster)


KUEUE_POD_COMPLETE_DELAY_MS = "4000"
"""How long a pod runs in the Kueue cluster: long enough to see the quota held."""


def kueue_wanted() -> str | None:
    """None when the kueue tests should run; otherwise why they are skipped."""
    if os.environ.get("TEST_CLUSTER_KUEUE") == "1":
        return None
    if subprocess.run([str(SCRIPT), "has-kueue"], capture_output=True, check=False).returncode == 0:
        return None
    return "Kueue is not built: run `hack/test-cluster build-kueue`, or set TEST_CLUSTER_KUEUE=1 to build it"


@pytest.fixture(scope="session")
def kueue_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[K8sCluster]:
    """A second control plane with Kueue (see the module docstring) for the whole session."""
    reason = kueue_wanted()
    if reason is not None:
        pytest.skip(reason)
    if os.environ.get("TEST_KUEUE_CLUSTER_DIR"):
        state_dir = Path(os.environ["TEST_KUEUE_CLUSTER_DIR"])
    else:
        state_dir = tmp_path_factory.mktemp("kueue") / "cluster"
    cluster, was_up = start_cluster(
        state_dir,
        TEST_CLUSTER_KUEUE="1",
        TEST_CLUSTER_POD_COMPLETE_DELAY_MS=KUEUE_POD_COMPLETE_DELAY_MS,
    )
    yield cluster
    if os.environ.get("KEEP_TEST_CLUSTER") == "1" or was_up:
        return
    stop_cluster(cluster)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "k8s: needs the real test control plane (hack/test-cluster: etcd, kube-apiserver, "
        "kube-controller-manager, kube-scheduler, KWOK); builds it on first use",
    )


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: Sequence[pytest.Item]) -> None:
    """Give the first test that sets up `k8s_cluster` time for a cold build.

    The session fixture is created during that test's setup, which pytest-timeout counts against the
    test's own timeout (600 s in pyproject.toml) - far less than compiling Kubernetes takes.
    """
    for fixture in ("k8s_cluster", "kueue_cluster"):
        for item in items:
            if fixture in getattr(item, "fixturenames", ()):
                item.add_marker(pytest.mark.timeout(UP_TIMEOUT_SECONDS + DOWN_TIMEOUT_SECONDS), append=False)
                break


T = TypeVar("T")


def wait_for(
    what: str, probe: Callable[[], T | None], timeout: float = 60, detail: Callable[[], str] | None = None
) -> T:
    """Poll until probe() is truthy; fail naming `what` (plus `detail()`, e.g. a log tail) after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            extra = detail() if detail else ""
            pytest.fail(f"timed out after {timeout}s waiting for {what}{extra}", pytrace=False)
        time.sleep(0.2)
