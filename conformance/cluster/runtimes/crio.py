"""CRI-O, declared: built from its Go module (+ pinns), configured entirely by files of our own.

Every file CRI-O reads is rendered here (crio.conf, containers' registries.conf, policy.json,
storage.conf, per-registry CAs), so the host's /etc/crio and /etc/containers configuration is never
consulted on the local cluster, and the kind node image carries exactly the same settings.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from conformance.cluster import cni, pins
from conformance.cluster.components import gomodules
from conformance.cluster.daemons import Daemon, kill_all, processes_with_arg
from conformance.cluster.mounts import unmount_all
from conformance.cluster.runtimes.base import NodeSetup, RegistryRoute, cri_ready
from conformance.infra.process import run

CONMON = "/usr/bin/conmon"

READY_TIMEOUT = 90.0


def toml(value: object) -> str:
    """Enough TOML for our scalars and string lists (JSON string escaping is valid TOML)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml(v) for v in value) + "]"
    return json.dumps(str(value))


def toml_table(name: str, values: Mapping[str, object]) -> str:
    return f"[{name}]\n" + "".join(f"{key} = {toml(value)}\n" for key, value in values.items()) + "\n"


def render_registries_conf(routes: tuple[RegistryRoute, ...]) -> str:
    """containers-registries.conf(5): each route's prefix → location; loopback is not trusted for plain
    HTTP by itself, so every insecure route says so."""
    out = "unqualified-search-registries = []\n\n"
    for route in routes:
        out += f"[[registry]]\nprefix = {toml(route.prefix)}\nlocation = {toml(route.location)}\n"
        out += f"insecure = {toml(route.insecure)}\n\n"
    return out


def render_policy_json() -> str:
    return json.dumps({"default": [{"type": "insecureAcceptAnything"}]}, indent=2) + "\n"


@dataclass(frozen=True)
class CrioPaths:
    setup: NodeSetup

    @property
    def storage_root(self) -> Path:
        return self.setup.state_dir / "containers" / "storage"

    @property
    def storage_runroot(self) -> Path:
        return self.setup.run_dir / "containers" / "storage"

    @property
    def crio_state(self) -> Path:
        return self.setup.state_dir / "crio"

    @property
    def crio_run(self) -> Path:
        return self.setup.run_dir / "crio"

    @property
    def socket(self) -> Path:
        return self.crio_run / "crio.sock"

    def conf(self, name: str) -> Path:
        return self.setup.config_dir / name


def render_crio_conf(setup: NodeSetup, pinns: Path) -> str:
    paths = CrioPaths(setup)
    return (
        toml_table(
            "crio",
            {
                "root": str(paths.storage_root),
                "runroot": str(paths.storage_runroot),
                "storage_driver": "overlay",
                "log_dir": str(setup.log_dir / "crio"),
                "version_file": str(paths.crio_run / "version"),
                "version_file_persist": str(paths.crio_state / "version"),
                "clean_shutdown_file": str(paths.crio_state / "clean.shutdown"),
            },
        )
        + toml_table("crio.api", {"listen": str(paths.socket)})
        + toml_table(
            "crio.runtime",
            {
                "cgroup_manager": setup.cgroup_manager,
                # bookworm's crun 1.8.1 only accepts runtime-spec 1.0.x ("unknown version specified" on
                # the specs CRI-O 1.36 writes), so runc is the only handler configured.
                "default_runtime": "runc",
                "pinns_path": str(pinns),
                "namespaces_dir": str(setup.run_dir / "crio-ns"),
                "container_exits_dir": str(paths.crio_run / "exits"),
                "container_attach_socket_dir": str(paths.crio_run),
                "drop_infra_ctr": True,  # the pause image is still needed to create the sandbox
            },
        )
        + toml_table(
            "crio.runtime.runtimes.runc",
            {
                "runtime_path": str(setup.oci_runtime),
                "runtime_type": "oci",
                "runtime_root": str(setup.run_dir / "runc"),
                "monitor_path": CONMON,
                "monitor_cgroup": "pod",
            },
        )
        + toml_table(
            "crio.image",
            {
                "pause_image": setup.pause_image,
                "pause_command": "/pause",
                "signature_policy": str(paths.conf("policy.json")),
                "oci_artifact_mount_support": True,
            },
        )
        + toml_table(
            "crio.network",
            {
                "cni_default_network": cni.NETWORK,
                "network_dir": str(setup.cni_conf_dir),
                "plugin_dirs": [str(d) for d in setup.cni_plugin_dirs],
            },
        )
        # NRI would leave a socket under /var/run/nri; nothing here uses it.
        + toml_table("crio.nri", {"enable_nri": False})
    )


def render_storage_conf(setup: NodeSetup) -> str:
    """containers/storage settings of our own, so /etc/containers/storage.conf is never consulted."""
    paths = CrioPaths(setup)
    return toml_table(
        "storage", {"driver": "overlay", "graphroot": str(paths.storage_root), "runroot": str(paths.storage_runroot)}
    )


def crio_args(binary: Path, setup: NodeSetup) -> tuple[str, ...]:
    paths = CrioPaths(setup)
    return (
        str(binary),
        f"--config={paths.conf('crio.conf')}",
        f"--config-dir={paths.conf('crio.conf.d')}",  # ours: never pick up /etc/crio/crio.conf.d
        # The host's global registries.conf (and its drop-ins) stay untouched and unread.
        f"--registries-conf={paths.conf('registries.conf')}",
        f"--registries-conf-dir={paths.conf('registries.conf.d')}",
        "--log-level=info",
    )


class CrioRuntime:
    name = "cri-o"
    default_version = pins.CRIO
    packages: tuple[str, ...] = ("conmon", "jq", "golang-github-containers-common", "libseccomp2")
    log_units: tuple[str, ...] = ("crio",)  # its daemons, as systemd units in a kind node
    config_dir_name = "crio"
    # containers/storage and its OCI runtimes' state, and the per-registry CA directory containers/image reads
    host_paths: tuple[str, ...] = (
        "/run/crio",
        "/run/crun",
        "/run/runc",
        "/var/lib/containers",
        "/etc/containers/certs.d",
    )
    mount_prefixes: tuple[str, ...] = ("/run/containers/storage", "/var/lib/containers/storage")

    def ca_dir(self, setup: NodeSetup, location: str) -> Path:
        return Path("/etc/containers/certs.d") / location  # containers/image reads CAs only from certs.d

    def oci_runtime(self, binaries: Mapping[str, Path]) -> str:
        # The pinned runc, as containerd's: bookworm's 1.1.5 advertises no ID-mapped mounts in `runc features`,
        # and CRI-O then reports no user namespace support (cri-o v1.36.3 internal/oci RuntimeSupportsIDMap).
        return str(binaries["runc"])

    def binaries(self, version: str, cache: Path) -> dict[str, Path]:
        built = gomodules.build(gomodules.CRIO, version, cache)
        runc = gomodules.build(gomodules.RUNC, pins.RUNC, cache).binary("runc")
        return {"crio": built.binary("crio"), "pinns": built.binary("pinns"), "runc": runc}

    def socket(self, setup: NodeSetup) -> Path:
        return CrioPaths(setup).socket

    def config_files(self, setup: NodeSetup, binaries: Mapping[str, Path], version: str) -> dict[Path, str]:
        paths = CrioPaths(setup)
        empty_drop_in = "# ivc: no drop-ins; everything is in the main file\n"
        return {
            paths.conf("crio.conf"): render_crio_conf(setup, binaries["pinns"]),
            paths.conf("crio.conf.d/00-ivc.conf"): empty_drop_in,
            paths.conf("registries.conf.d/00-ivc.conf"): empty_drop_in,
            paths.conf("policy.json"): render_policy_json(),
            paths.conf("storage.conf"): render_storage_conf(setup),
            **self.registry_files(setup),
        }

    def registry_files(self, setup: NodeSetup) -> dict[Path, str]:
        files = {CrioPaths(setup).conf("registries.conf"): render_registries_conf(setup.registries)}
        for route in setup.registries:
            if route.ca_file is not None:
                files[self.ca_dir(setup, route.location) / "ca.crt"] = route.ca_file.read_text()
        return files

    @property
    def reload(self) -> tuple[str, ...]:
        # crio.conf(5): SIGHUP re-reads registries.conf; the unit's ExecReload sends it.
        return ("systemctl", "reload", "crio")

    def daemons(self, setup: NodeSetup, binaries: Mapping[str, Path], crictl: Path | None = None) -> list[Daemon]:
        socket = CrioPaths(setup).socket

        def kill_conmons() -> None:
            # conmon double-forks away from CRI-O; ours are recognisable by our state dir in argv.
            kill_all(processes_with_arg("conmon", str(setup.state_dir)))

        return [
            Daemon(
                name="crio",
                argv=crio_args(binaries["crio"], setup),
                # conmon/runc/iptables/jq are found on PATH; storage.conf of our own keeps /etc out of it.
                env={"CONTAINERS_STORAGE_CONF": str(CrioPaths(setup).conf("storage.conf"))},
                ready=cri_ready(socket, crictl),
                timeout=READY_TIMEOUT,
                after_stop=kill_conmons,
            )
        ]

    def preload_images(
        self, root: Path, layout: Path, references: Sequence[str], binaries: Mapping[str, Path], work: Path
    ) -> None:
        """containers/storage under the node root, written by skopeo: CRI-O finds the images at first start."""
        storage = f"overlay@{root}/var/lib/containers/storage+{work}/storage-run"
        try:
            for reference in sorted(references):
                source, target = f"oci:{layout}:{reference}", f"containers-storage:[{storage}]{reference}"
                copy = ["skopeo", "--insecure-policy", "copy", "--quiet", source, target]
                run(copy, what=f"skopeo copy {reference}", timeout=600)
        finally:
            # containers/storage leaves its overlay directory mounted on itself.
            unmount_all([str(root / "var/lib/containers/storage"), str(work / "storage-run")])


CRIO_RUNTIME = CrioRuntime()
