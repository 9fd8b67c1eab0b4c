"""Adding a runtime is one declaration: a fake one, registered here, is offered by the options and rendered
by the local and the kind provider alike (nothing of either provider is edited for it)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest
import yaml

from conformance.cluster import ClusterOptions, runtimes
from conformance.cluster.daemons import Daemon
from conformance.cluster.kind import KindProvider
from conformance.cluster.kind.node_image import node_setup
from conformance.cluster.local.plan import LocalPlan
from conformance.cluster.runtimes.base import NodeSetup, cri_ready
from conformance.cluster.systemd_nodes import runtime_units, systemd_node_access


class Youki:
    """A CRI runtime the suite has never heard of, declared in full."""

    name = "youki"
    default_version = "v0.5.0"
    packages: tuple[str, ...] = ()
    log_units: tuple[str, ...] = ("youki-cri",)
    config_dir_name = "youki"
    host_paths: tuple[str, ...] = ("/run/youki",)
    mount_prefixes: tuple[str, ...] = ()
    reload: tuple[str, ...] = ("systemctl", "reload", "youki-cri")

    def binaries(self, version: str, cache: Path) -> dict[str, Path]:
        return {"youki-cri": cache / f"youki-{version}" / "youki-cri"}

    def socket(self, setup: NodeSetup) -> Path:
        return setup.run_dir / "youki" / "youki.sock"

    def config_files(self, setup: NodeSetup, binaries: Mapping[str, Path], version: str) -> dict[Path, str]:
        return {setup.config_dir / "youki.toml": f'socket = "{self.socket(setup)}"\n', **self.registry_files(setup)}

    def registry_files(self, setup: NodeSetup) -> dict[Path, str]:
        return {setup.config_dir / "registries.toml": "".join(f'"{r.prefix}"\n' for r in setup.registries)}

    def ca_dir(self, setup: NodeSetup, location: str) -> Path:
        return setup.config_dir / "certs" / location

    def oci_runtime(self, binaries: Mapping[str, Path]) -> str:
        return "/usr/bin/youki"

    def daemons(self, setup: NodeSetup, binaries: Mapping[str, Path], crictl: Path | None = None) -> list[Daemon]:
        return [Daemon("youki-cri", (str(binaries["youki-cri"]),), cri_ready(self.socket(setup), crictl), 60)]

    def preload_images(
        self, root: Path, layout: Path, references: Sequence[str], binaries: Mapping[str, Path], work: Path
    ) -> None:
        raise NotImplementedError


@pytest.fixture(autouse=True)
def youki(monkeypatch: pytest.MonkeyPatch) -> Youki:
    declared = Youki()
    monkeypatch.setitem(runtimes.RUNTIMES, declared.name, declared)
    return declared


def test_the_options_offer_it() -> None:
    assert ClusterOptions.parse("local", {"runtime": "youki"}).runtime == "youki"


def test_the_local_provider_renders_it(tmp_path: Path) -> None:
    plan = LocalPlan(ClusterOptions.parse("local", {"runtime": "youki", "state_dir": str(tmp_path)}))
    setup = plan.node_setup()
    assert setup.config_dir == tmp_path / "config" / "youki"
    files = plan.runtime.config_files(setup, plan.runtime.binaries("v0.5.0", tmp_path), "v0.5.0")
    assert files[tmp_path / "config/youki/youki.toml"] == f'socket = "{tmp_path}/run/youki/youki.sock"\n'
    assert plan.runtime_daemons == ["youki-cri"]
    assert [daemon.name for daemon in plan.daemons()][-2:] == ["youki-cri", "kubelet"]
    assert "/run/youki" in plan.host_paths()


def test_the_kind_provider_renders_it_beside_cri_o() -> None:
    provider = KindProvider(ClusterOptions.parse("kind", {"node_runtimes": "cri-o,youki:v0.5.1"}))
    assert provider.mixed
    assert node_setup("youki").config_dir == Path("/etc/youki")
    assert "ivc/kind-node:v1.36.3-youki0.5.1" in [recipe.tag for recipe in provider.recipes.values()]
    config = yaml.safe_load(provider.cluster_config(dict.fromkeys(provider.recipes, "image")))
    worker = yaml.safe_load(config["nodes"][1]["kubeadmConfigPatches"][0])
    assert worker["nodeRegistration"]["criSocket"] == "unix:///run/youki/youki.sock"
    assert {"crio", "youki-cri"} <= set(runtime_units())


def test_a_kind_node_runtime_is_found_whatever_the_command_line_names() -> None:
    """A mixed cluster is tested without its --node-runtimes: restarts and journals still reach every
    declared runtime's units (CI's mixed run restarted 'crio' on a containerd node before)."""
    access = systemd_node_access(("docker", "exec", "{node}"), restarts=True)
    assert {"crio", "containerd"} <= set(access.logs["runtime"][5::2])
    assert "containerd" in access.restart["runtime"][-1]
