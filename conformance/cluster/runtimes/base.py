"""What a runtime declaration is given (`NodeSetup`) and what it provides (`Runtime`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from conformance.cluster.daemons import Daemon
from conformance.infra.process import run
from conformance.infra.wait import NotYet


@dataclass(frozen=True)
class RegistryRoute:
    """A registry as Pods name it (`prefix`) and as the runtime dials it (`location`)."""

    prefix: str
    location: str
    insecure: bool = True  # plain HTTP
    ca_file: Path | None = None  # PEM to trust for a TLS registry with its own CA


@dataclass(frozen=True)
class NodeSetup:
    """Everything about the node a runtime's configuration depends on.

    The local provider puts every path under its state directory and uses the cgroupfs manager (no
    systemd on the host); a kind node uses the standard paths and systemd.
    """

    state_dir: Path  # persistent state (image store, runtime state)
    run_dir: Path  # runtime state (sockets, mounts)
    config_dir: Path  # where the runtime's configuration files are written
    log_dir: Path  # container logs
    cgroup_manager: str  # "cgroupfs" | "systemd"
    pause_image: str
    cni_conf_dir: Path
    cni_plugin_dirs: tuple[Path, ...]
    oci_runtime: Path  # the runc wrapper that adapts runc to this host (runtimes.oci)
    registries: tuple[RegistryRoute, ...] = ()


class Runtime(Protocol):
    @property
    def name(self) -> str:
        """As nodes report it in containerRuntimeVersion: "cri-o", "containerd"."""
        ...

    @property
    def default_version(self) -> str: ...

    @property
    def log_units(self) -> tuple[str, ...]:
        """The systemd units (named after its daemons) whose journal is the runtime's log on a node."""
        ...

    @property
    def config_dir_name(self) -> str:
        """Its configuration's directory under /etc on a kind node ("crio" for CRI-O)."""
        ...

    @property
    def host_paths(self) -> tuple[str, ...]:
        """Host paths it may create outside its state directory (the local cluster's `down` removes those
        that did not exist before `up`)."""
        ...

    @property
    def mount_prefixes(self) -> tuple[str, ...]:
        """Where it may leave mounts outside its state directory (the local cluster's `down` unmounts them)."""
        ...

    def ca_dir(self, setup: NodeSetup, location: str) -> Path:
        """Where it reads the CA of the registry at `location` (CRI-O: /etc/containers/certs.d/<location>)."""
        ...

    def oci_runtime(self, binaries: Mapping[str, Path]) -> str:
        """The runc the host's wrapper (runtimes.oci) runs: one it builds, or the system's."""
        ...

    @property
    def packages(self) -> tuple[str, ...]:
        """Debian packages it needs beside its own binaries."""
        ...

    def binaries(self, version: str, cache: Path) -> Mapping[str, Path]:
        """Build (or take from the cache) the runtime's binaries; name → path."""
        ...

    def socket(self, setup: NodeSetup) -> Path:
        """The CRI socket the kubelet and crictl talk to."""
        ...

    def config_files(self, setup: NodeSetup, binaries: Mapping[str, Path], version: str) -> dict[Path, str]:
        """Every configuration file the runtime reads at `version`, by absolute path (`registry_files` included)."""
        ...

    def registry_files(self, setup: NodeSetup) -> dict[Path, str]:
        """The files that say where registries are and whom to trust: rewritten on a node when its
        registries change (kind's registry containers), then `reload` is run there."""
        ...

    @property
    def reload(self) -> tuple[str, ...]:
        """The command (on a node with systemd) that makes the runtime re-read `registry_files`; () if none."""
        ...

    def daemons(self, setup: NodeSetup, binaries: Mapping[str, Path], crictl: Path | None = None) -> list[Daemon]:
        """The processes to start on a host without an init system, in order; `crictl` (pointed at
        nothing: the probe passes the socket) lets the readiness probe make a real CRI call."""
        ...

    def preload_images(
        self, root: Path, layout: Path, references: Sequence[str], binaries: Mapping[str, Path], work: Path
    ) -> None:
        """Store the images `references` of the OCI layout `layout` in the runtime's image store under the node
        root `root` (a kind node image: nothing may be pulled when the cluster starts); `work` is scratch."""
        ...


def cri_refusal(crictl: Path, socket: Path) -> str | None:
    """None when the runtime at `socket` answers CRI (`crictl info`), else what crictl said: the one check of
    a runtime's readiness, for the runtimes' daemons and a user's own runtime alike."""
    info = run([str(crictl), "--runtime-endpoint", f"unix://{socket}", "info"], what="crictl info", check=False,
               timeout=30)  # fmt: skip
    return None if info.returncode == 0 else (info.stderr or info.stdout).strip()[-200:]


def cri_ready(socket: Path, crictl: Path | None) -> Callable[[], None]:
    """A readiness probe: the socket exists and, given crictl, answers CRI; NotYet (retried) until then."""

    def ready() -> None:
        if not socket.is_socket():
            raise NotYet(f"{socket} does not exist yet")
        if crictl is not None and (refused := cri_refusal(crictl, socket)) is not None:
            raise NotYet(f"crictl info: {refused}")

    return ready
