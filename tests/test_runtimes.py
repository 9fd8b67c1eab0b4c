"""Runtime declarations: the files CRI-O reads and the daemon it runs as (pure; no runtime started)."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

from conformance.cluster.runtimes import RUNTIMES, runtime
from conformance.cluster.runtimes.base import NodeSetup, RegistryRoute
from conformance.cluster.runtimes.crio import render_policy_json
from conformance.cluster.runtimes.oci import render_runc_wrapper

STATE = Path("/var/lib/ivc/local")


def setup(tmp_path: Path | None = None) -> NodeSetup:
    ca = None
    if tmp_path is not None:
        ca = tmp_path / "ca.crt"
        ca.write_text("PEM")
    return NodeSetup(
        state_dir=STATE,
        run_dir=STATE / "run",
        config_dir=STATE / "config/cri-o",
        log_dir=STATE / "pod-logs",
        cgroup_manager="cgroupfs",
        pause_image="127.0.0.1:5000/ivc/pause:3.10.1",
        cni_conf_dir=STATE / "cni/net.d",
        cni_plugin_dirs=(Path("/usr/lib/cni"),),
        oci_runtime=STATE / "bin/runc",
        registries=(
            RegistryRoute("127.0.0.1:5000", "127.0.0.1:5000"),
            RegistryRoute("127.0.0.1:5443", "127.0.0.1:5443", insecure=False, ca_file=ca),
        ),
    )


BINARIES = {"crio": Path("/cache/cri-o-v1.36.3/crio"), "pinns": Path("/cache/cri-o-v1.36.3/pinns")}


def test_runtimes_are_declared_by_name() -> None:
    assert list(RUNTIMES) == ["cri-o", "containerd"]
    assert runtime("cri-o").socket(setup()) == STATE / "run/crio/crio.sock"


def test_crio_conf_keeps_all_state_under_the_setup(tmp_path: Path) -> None:
    files = runtime("cri-o").config_files(setup(tmp_path), BINARIES, "v1.36.3")
    conf = tomllib.loads(files[STATE / "config/cri-o/crio.conf"])["crio"]
    assert conf["root"] == str(STATE / "containers/storage")
    assert conf["runroot"] == str(STATE / "run/containers/storage")
    assert conf["api"]["listen"] == str(STATE / "run/crio/crio.sock")
    rt = conf["runtime"]
    assert rt["cgroup_manager"] == "cgroupfs"
    assert rt["default_runtime"] == "runc"  # bookworm crun 1.8.1 rejects runtime-spec > 1.0
    assert rt["pinns_path"] == "/cache/cri-o-v1.36.3/pinns"
    assert list(rt["runtimes"]) == ["runc"]
    assert rt["runtimes"]["runc"]["monitor_cgroup"] == "pod"  # cgroupfs accepts only "pod" or ""
    assert rt["runtimes"]["runc"]["runtime_path"] == str(STATE / "bin/runc")
    image = conf["image"]
    assert image["pause_image"] == "127.0.0.1:5000/ivc/pause:3.10.1"
    assert image["oci_artifact_mount_support"] is True
    assert "insecure_registries" not in image  # a no-op in CRI-O; registries.conf does it
    assert conf["network"]["plugin_dirs"] == ["/usr/lib/cni"]
    assert conf["nri"]["enable_nri"] is False
    registries = tomllib.loads(files[STATE / "config/cri-o/registries.conf"])
    assert registries["unqualified-search-registries"] == []
    assert registries["registry"] == [
        {"prefix": "127.0.0.1:5000", "location": "127.0.0.1:5000", "insecure": True},
        {"prefix": "127.0.0.1:5443", "location": "127.0.0.1:5443", "insecure": False},
    ]
    assert files[Path("/etc/containers/certs.d/127.0.0.1:5443/ca.crt")] == "PEM"
    storage = tomllib.loads(files[STATE / "config/cri-o/storage.conf"])["storage"]
    assert storage["graphroot"] == conf["root"]


def test_crio_daemon_reads_only_our_files() -> None:
    (daemon,) = runtime("cri-o").daemons(setup(), BINARIES)
    argv = list(daemon.argv)
    assert argv[0] == "/cache/cri-o-v1.36.3/crio"
    assert f"--config={STATE}/config/cri-o/crio.conf" in argv
    assert f"--config-dir={STATE}/config/cri-o/crio.conf.d" in argv
    assert f"--registries-conf-dir={STATE}/config/cri-o/registries.conf.d" in argv
    assert daemon.env["CONTAINERS_STORAGE_CONF"] == f"{STATE}/config/cri-o/storage.conf"
    assert daemon.after_stop is not None  # conmon double-forks away and must be killed


def test_policy_json() -> None:
    assert json.loads(render_policy_json()) == {"default": [{"type": "insecureAcceptAnything"}]}


def test_runc_wrapper_drops_hugetlb_limits() -> None:
    wrapper = render_runc_wrapper("/usr/sbin/runc")
    assert wrapper.startswith("#!/bin/sh\n")
    assert "del(.linux.resources.hugepageLimits?)" in wrapper  # create: the bundle's config.json
    assert "del(.hugepageLimits?)" in wrapper  # update --resources -
    assert wrapper.rstrip().endswith('exec /usr/sbin/runc "$@"')


def test_containerd_config_and_hosts(tmp_path: Path) -> None:
    binaries = {"containerd": Path("/c/containerd"), "containerd-shim-runc-v2": Path("/c/containerd-shim-runc-v2"),
                "runc": Path("/c/runc")}  # fmt: skip
    ctrd = runtime("containerd")
    files = ctrd.config_files(setup(tmp_path), binaries, "v2.3.7")
    cni = tomllib.loads(files[STATE / "config/cri-o/config.toml"])["plugins"]["io.containerd.cri.v1.runtime"]["cni"]
    assert cni["bin_dirs"] == ["/usr/lib/cni"]
    old = tomllib.loads(ctrd.config_files(setup(tmp_path), binaries, "v2.0.14")[STATE / "config/cri-o/config.toml"])
    assert old["plugins"]["io.containerd.cri.v1.runtime"]["cni"]["bin_dir"] == "/usr/lib/cni"  # 2.0 has no bin_dirs
    conf = tomllib.loads(files[STATE / "config/cri-o/config.toml"])
    assert conf["version"] == 3
    assert conf["root"] == str(STATE / "containerd") and conf["state"] == str(STATE / "run/containerd")
    cri_images = conf["plugins"]["io.containerd.cri.v1.images"]
    assert cri_images["pinned_images"]["sandbox"] == "127.0.0.1:5000/ivc/pause:3.10.1"
    assert cri_images["registry"]["config_path"] == str(STATE / "config/cri-o/certs.d")
    runc = conf["plugins"]["io.containerd.cri.v1.runtime"]["containerd"]["runtimes"]["runc"]
    assert runc["options"] == {"BinaryName": str(STATE / "bin/runc"), "SystemdCgroup": False}
    plain = tomllib.loads(files[STATE / "config/cri-o/certs.d/127.0.0.1:5000/hosts.toml"])
    assert plain["server"] == "http://127.0.0.1:5000"
    assert files[STATE / "config/cri-o/certs.d/127.0.0.1:5443/ca.crt"] == "PEM"
    (daemon,) = ctrd.daemons(setup(), binaries)
    assert daemon.argv == ("/c/containerd", "--config", str(STATE / "config/cri-o/config.toml"))
    assert daemon.env["PATH"].startswith("/c:")  # the shim is found next to containerd
    assert ctrd.socket(setup()) == STATE / "run/containerd/containerd.sock"
