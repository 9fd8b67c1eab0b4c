"""The two tools the kind provider drives, found on PATH (never downloaded) and checked once."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from conformance.cluster import pins
from conformance.cluster.components import gomodules
from conformance.infra.errors import ClusterError
from conformance.infra.process import Completed, last_line, run
from conformance.infra.versions import Version

# kind 0.33 is the first to write kubeadm v1beta4 for 1.36 (v1beta3 is refused by kubeadm >= 1.37).
MIN_KIND_VERSION = Version(0, 33)  # writes kubeadm v1beta4 for 1.36 and knows the node image layout we use
ALTERNATIVES = "or use --cluster=local/existing"
DOCKER_HINT = "install Docker (https://docs.docker.com/engine/install/), or start one with `scripts/dockerd start`"


@dataclass(frozen=True)
class Tools:
    docker: str
    kind: str

    def docker_run(
        self,
        *args: str,
        what: str,
        check: bool = True,
        input: str | None = None,
        timeout: float = 120,
        detached: bool = False,
    ) -> Completed:
        return run([self.docker, *args], what=what, check=check, input=input, timeout=timeout, detached=detached)

    def kind_run(
        self, *args: str, what: str, check: bool = True, timeout: float = 120, detached: bool = False
    ) -> Completed:
        return run([self.kind, *args], what=what, check=check, timeout=timeout, detached=detached)

    def node_exec(self, node: str, *args: str, what: str, input: str | None = None, check: bool = True) -> Completed:
        interactive = ["-i"] if input is not None else []  # -i forwards stdin (file contents) into the node
        return self.docker_run("exec", *interactive, node, *args, what=what, input=input, check=check)


def find_tools(cache: Path) -> Tools:
    """docker from PATH and its daemon answering; kind from PATH, else built from its Go module (pinned,
    cached). One actionable line when either is unusable."""
    provider = os.environ.get("KIND_EXPERIMENTAL_PROVIDER", "docker")
    if provider != "docker":
        raise ClusterError(
            f"KIND_EXPERIMENTAL_PROVIDER={provider} is not supported: the kind provider drives docker; "
            f"unset it {ALTERNATIVES}"
        )
    docker = shutil.which("docker")
    if not docker:
        raise ClusterError(f"docker not found on PATH: {DOCKER_HINT}, {ALTERNATIVES}")
    probe = run([docker, "version", "--format", "{{.Server.Version}}"], what="docker version", check=False, timeout=30)
    if probe.returncode != 0:
        where = os.environ.get("DOCKER_HOST", "the default socket")
        raise ClusterError(
            f"the docker daemon at {where} is not reachable ({last_line(probe.stderr)}): start it or set "
            f"DOCKER_HOST, {ALTERNATIVES}"
        )
    return Tools(docker=docker, kind=_kind(cache))


def _kind(cache: Path) -> str:
    found = shutil.which("kind")
    if found is None:
        return str(gomodules.build(gomodules.KIND, pins.KIND, cache).binary("kind"))
    text = run([found, "version"], what="kind version", timeout=30).stdout.strip()
    version = Version.parse_or_none(text)
    if version is None or version < MIN_KIND_VERSION:
        minimum = MIN_KIND_VERSION
        raise ClusterError(
            f"{found} is {text or 'of unknown version'}, too old for the node image (needs kind >= {minimum}): "
            f"upgrade it, or take it off PATH and the suite builds kind {pins.KIND}"
        )
    return found


def check_privileged(tools: Tools, image: str) -> None:
    """kind nodes are privileged containers: prove docker can start one before anything slow happens."""
    proc = tools.docker_run(
        "run",
        "--rm",
        "--privileged",
        "--entrypoint",
        "/bin/true",
        image,
        what="docker run --privileged",
        check=False,
        timeout=120,
    )
    if proc.returncode != 0:
        raise ClusterError(
            f"docker cannot start privileged containers here ({last_line(proc.stderr)}); kind nodes need them. "
            "When the host withholds a capability (a VM whose bounding set lacks CAP_SYS_RESOURCE), give dockerd "
            "a runtime that drops it, as `scripts/dockerd start` does, "
            f"{ALTERNATIVES}"
        )


@contextlib.contextmanager
def shielded_from_ctrl_c() -> Iterator[None]:
    """Cleanup must finish even if the user presses Ctrl-C again."""
    try:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread: nothing to shield
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
