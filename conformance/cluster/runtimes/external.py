"""A runtime the user started (vendor mode): the suite only talks to its CRI socket.

Nothing is built, configured, started or stopped. What that runtime must be configured for is in
README ("Bring your own runtime"): the suite's registries, the CNI directories, the cgroup driver.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from conformance.cluster.daemons import Daemon
from conformance.cluster.runtimes.base import NodeSetup
from conformance.cluster.runtimes.oci import RUNC
from conformance.infra.errors import ClusterError


@dataclass(frozen=True)
class ExternalRuntime:
    endpoint: str  # unix:///path/to/cri.sock
    name: str = "external"
    default_version: str = ""
    packages: tuple[str, ...] = ()
    log_units: tuple[str, ...] = ()
    config_dir_name: str = "external"
    host_paths: tuple[str, ...] = ()  # the user's runtime keeps its own paths and mounts
    mount_prefixes: tuple[str, ...] = ()

    def ca_dir(self, setup: NodeSetup, location: str) -> Path:
        return setup.config_dir / "certs.d" / location  # unused: the user's runtime is configured by the user

    def oci_runtime(self, binaries: Mapping[str, Path]) -> str:
        return RUNC  # unused: the user's runtime brings its own

    def __post_init__(self) -> None:
        if not self.endpoint.startswith("unix:///"):
            raise ClusterError(f"--runtime-endpoint {self.endpoint!r} is not unix:///path/to/the/cri.sock")

    def binaries(self, version: str, cache: Path) -> dict[str, Path]:
        return {}

    def socket(self, setup: NodeSetup) -> Path:
        return Path(self.endpoint.removeprefix("unix://"))

    def config_files(self, setup: NodeSetup, binaries: Mapping[str, Path], version: str) -> dict[Path, str]:
        return {}

    def registry_files(self, setup: NodeSetup) -> dict[Path, str]:
        return {}

    @property
    def reload(self) -> tuple[str, ...]:
        return ()

    def daemons(self, setup: NodeSetup, binaries: Mapping[str, Path], crictl: Path | None = None) -> list[Daemon]:
        return []

    def preload_images(
        self, root: Path, layout: Path, references: Sequence[str], binaries: Mapping[str, Path], work: Path
    ) -> None:
        raise ClusterError("a kind node image needs a declared runtime (cri-o, containerd), not a user's socket")
