"""The two tools the kind provider drives, found on PATH (never downloaded) and checked once."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

from conformance.cluster.errors import ClusterError
from conformance.cluster.host import last_line, run
from conformance.cluster.kind.config import parse_tool_version

MIN_KIND_VERSION = (0, 27, 0)
KIND_INSTALL_HINT = "install kind >= 0.27 (https://kind.sigs.k8s.io/docs/user/quick-start/#installation)"
ALTERNATIVES = "or use --cluster=local/existing"


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
    ) -> subprocess.CompletedProcess[str]:
        return run([self.docker, *args], what=what, check=check, input=input, timeout=timeout, detached=detached)

    def kind_run(
        self, *args: str, what: str, check: bool = True, timeout: float = 120, detached: bool = False
    ) -> subprocess.CompletedProcess[str]:
        return run([self.kind, *args], what=what, check=check, timeout=timeout, detached=detached)

    def node_exec(
        self, node: str, *args: str, what: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        interactive = ["-i"] if input is not None else []  # -i forwards stdin (file contents) into the node
        return self.docker_run("exec", *interactive, node, *args, what=what, input=input, check=check)


def find_tools() -> Tools:
    """docker and kind from PATH, both answering; one actionable line when not."""
    provider = os.environ.get("KIND_EXPERIMENTAL_PROVIDER", "docker")
    if provider != "docker":
        raise ClusterError(
            f"KIND_EXPERIMENTAL_PROVIDER={provider} is not supported: the kind provider drives docker; "
            f"unset it {ALTERNATIVES}"
        )
    kind = shutil.which("kind")
    if not kind:
        raise ClusterError(f"kind not found on PATH: {KIND_INSTALL_HINT} {ALTERNATIVES}")
    docker = shutil.which("docker")
    if not docker:
        raise ClusterError(
            f"docker not found on PATH: install Docker (https://docs.docker.com/engine/install/) {ALTERNATIVES}"
        )
    version_text = run([kind, "version"], what="kind version", timeout=30).stdout
    version = parse_tool_version(version_text)
    if version is None or version < MIN_KIND_VERSION:
        raise ClusterError(f"{version_text.strip() or 'kind'} is too old: {KIND_INSTALL_HINT}")
    try:
        probe = run(
            [docker, "version", "--format", "{{.Server.Version}}"], what="docker version", check=False, timeout=30
        )
        reason = last_line(probe.stderr) if probe.returncode != 0 else ""
    except ClusterError as error:
        reason = str(error)
    if reason:
        raise ClusterError(
            f"docker daemon is not reachable ({reason}): start Docker or check DOCKER_HOST, {ALTERNATIVES}"
        )
    return Tools(docker=docker, kind=kind)


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
