"""containerd 2.x, declared: built from its Go module (daemon + runc shim), configured by files of our own.

The configuration is version 3 (containerd 2.0+; later releases migrate it on load). Registries are
configured the 2.x way, one `hosts.toml` per registry under `certs.d` (`config_path`): plain HTTP for
the suite's plain registry, the auth registry's own CA for the TLS one. Image volumes need nothing
to be switched on: the CRI plugin implements them from 2.1 (directory subPath from 2.2).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from conformance.cluster import pins
from conformance.cluster.components import gomodules
from conformance.cluster.daemons import Daemon, kill_all, processes_with_arg, start, stop, wait_ready
from conformance.cluster.mounts import unmount_all
from conformance.cluster.runtimes.base import NodeSetup, RegistryRoute, cri_ready
from conformance.cluster.runtimes.crio import toml, toml_table
from conformance.infra.errors import ClusterError
from conformance.infra.process import run
from conformance.infra.versions import Version
from conformance.infra.wait import NotYet

READY_TIMEOUT = 90.0
SHIM = "containerd-shim-runc-v2"


@dataclass(frozen=True)
class ContainerdPaths:
    setup: NodeSetup

    @property
    def root(self) -> Path:
        return self.setup.state_dir / "containerd"

    @property
    def state(self) -> Path:
        return self.setup.run_dir / "containerd"

    @property
    def socket(self) -> Path:
        return self.state / "containerd.sock"

    @property
    def config(self) -> Path:
        return self.setup.config_dir / "config.toml"

    @property
    def certs_d(self) -> Path:
        return self.setup.config_dir / "certs.d"


def render_config(setup: NodeSetup, version: str) -> str:
    paths = ContainerdPaths(setup)
    images = 'plugins."io.containerd.cri.v1.images"'
    runtime = 'plugins."io.containerd.cri.v1.runtime"'
    runc = f"{runtime}.containerd.runtimes.runc"
    return (
        "version = 3\n"
        + f"root = {toml(str(paths.root))}\nstate = {toml(str(paths.state))}\n\n"
        + toml_table("grpc", {"address": str(paths.socket)})
        + toml_table("ttrpc", {"address": f"{paths.socket}.ttrpc"})
        + toml_table(images, {"snapshotter": "overlayfs"})
        + toml_table(f"{images}.pinned_images", {"sandbox": setup.pause_image})
        + toml_table(f"{images}.registry", {"config_path": str(paths.certs_d)})
        + toml_table(f"{runtime}.cni", {**_cni_bin_dirs(setup, version), "conf_dir": str(setup.cni_conf_dir)})
        + toml_table(f"{runtime}.containerd", {"default_runtime_name": "runc"})
        + toml_table(runc, {"runtime_type": "io.containerd.runc.v2"})
        + toml_table(
            f"{runc}.options",
            {"BinaryName": str(setup.oci_runtime), "SystemdCgroup": setup.cgroup_manager == "systemd"},
        )
        # NRI would leave a socket under /var/run/nri; nothing here uses it.
        + toml_table('plugins."io.containerd.nri.v1.nri"', {"disable": True})
    )


def _cni_bin_dirs(setup: NodeSetup, version: str) -> dict[str, object]:
    """2.0 knows only `bin_dir` (one directory); 2.1 added `bin_dirs` and 2.4 removed `bin_dir`."""
    if Version.parse(version) < Version(2, 1):
        (directory,) = setup.cni_plugin_dirs
        return {"bin_dir": str(directory)}
    return {"bin_dirs": [str(d) for d in setup.cni_plugin_dirs]}


def render_hosts_toml(route: RegistryRoute, ca: Path | None) -> str:
    """certs.d/<prefix>/hosts.toml: Pods name `prefix`, containerd dials `location`."""
    scheme = "http" if route.insecure else "https"
    server = f"{scheme}://{route.location}"
    host: dict[str, object] = {"capabilities": ["pull", "resolve"]}
    if ca is not None:
        host["ca"] = str(ca)
    return f"server = {toml(server)}\n\n" + toml_table(f"host.{toml(server)}", host)


class ContainerdRuntime:
    name = "containerd"
    default_version = pins.CONTAINERD
    packages: tuple[str, ...] = ("jq",)
    log_units: tuple[str, ...] = ("containerd",)  # its daemons, as systemd units in a kind node
    config_dir_name = "containerd"
    host_paths: tuple[str, ...] = ("/run/runc",)  # its state is in its own directories; runc's is not
    mount_prefixes: tuple[str, ...] = ()

    def oci_runtime(self, binaries: Mapping[str, Path]) -> str:
        return str(binaries["runc"])  # its own: bookworm's runc 1.1.5 cannot start containerd 2.x sandboxes

    def binaries(self, version: str, cache: Path) -> dict[str, Path]:
        built = gomodules.build(gomodules.CONTAINERD, version, cache)
        binaries = {name: built.binary(name) for name in gomodules.CONTAINERD.binaries}
        binaries["runc"] = gomodules.build(gomodules.RUNC, pins.RUNC, cache).binary("runc")
        return binaries

    def socket(self, setup: NodeSetup) -> Path:
        return ContainerdPaths(setup).socket

    def config_files(self, setup: NodeSetup, binaries: Mapping[str, Path], version: str) -> dict[Path, str]:
        return {ContainerdPaths(setup).config: render_config(setup, version), **self.registry_files(setup)}

    def ca_dir(self, setup: NodeSetup, location: str) -> Path:
        return ContainerdPaths(setup).certs_d / location  # beside the registry's hosts.toml

    def registry_files(self, setup: NodeSetup) -> dict[Path, str]:
        files = {}
        for route in setup.registries:
            directory = self.ca_dir(setup, route.prefix)
            ca = None
            if route.ca_file is not None:
                ca = directory / "ca.crt"
                files[ca] = route.ca_file.read_text()
            files[directory / "hosts.toml"] = render_hosts_toml(route, ca)
        return files

    @property
    def reload(self) -> tuple[str, ...]:
        return ()  # hosts.toml files are read on every pull

    def daemons(self, setup: NodeSetup, binaries: Mapping[str, Path], crictl: Path | None = None) -> list[Daemon]:
        paths = ContainerdPaths(setup)

        def kill_shims() -> None:
            # The runc shims outlive containerd by design; ours name our socket in their argv.
            kill_all(processes_with_arg(SHIM, str(paths.socket)))

        shim_dir = str(binaries["containerd-shim-runc-v2"].parent)
        return [
            Daemon(
                name="containerd",
                argv=(str(binaries["containerd"]), "--config", str(paths.config)),
                # containerd finds its shim on PATH.
                env={"PATH": f"{shim_dir}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
                ready=cri_ready(paths.socket, crictl),
                timeout=READY_TIMEOUT,
                after_stop=kill_shims,
            )
        ]

    def preload_images(
        self, root: Path, layout: Path, references: Sequence[str], binaries: Mapping[str, Path], work: Path
    ) -> None:
        """containerd keeps images in its own store: a containerd started here on the node root's
        /var/lib/containerd imports (and unpacks) them into the k8s.io namespace the CRI uses."""
        socket, archive, config = work / "containerd.sock", work / "images.tar", work / "containerd-preload.toml"
        config.write_text(
            f'version = 3\nroot = "{root}/var/lib/containerd"\nstate = "{work}/containerd-state"\n'
            f'[grpc]\n  address = "{socket}"\n'
        )
        run(["tar", "-C", str(layout), "-cf", str(archive), "."], what="archive the OCI layout", timeout=300)

        def ready() -> None:
            if not socket.is_socket():
                raise NotYet(f"{socket} does not exist yet")

        daemon = Daemon("containerd-preload", (str(binaries["containerd"]), "--config", str(config)), ready, 60)
        record = start(daemon, log=work / "containerd-preload.log", pid_dir=work, base_env=os.environ)
        try:
            wait_ready(daemon, record)
            ctr = [str(binaries["ctr"]), "--address", str(socket), "--namespace", "k8s.io"]
            run([*ctr, "images", "import", "--local", str(archive)], what="ctr images import", timeout=600)
            listed = run([*ctr, "images", "list", "--quiet"], what="ctr images list", timeout=60).stdout.split()
            if missing := sorted(set(references) - set(listed)):
                raise ClusterError(f"containerd did not import {', '.join(missing)} (has {', '.join(listed)})")
        finally:
            stop(record)
            unmount_all([str(root / "var/lib/containerd"), str(work / "containerd-state")])


CONTAINERD_RUNTIME = ContainerdRuntime()
