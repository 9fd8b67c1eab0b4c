"""Unit tests of the local provider's pure rendering (configs and command lines); no cluster, no root."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from conformance.cluster import ClusterOptions, cni, gates, registries
from conformance.cluster.local import render
from conformance.cluster.local.hostprep import _jump_target
from conformance.cluster.local.provider import LocalProvider
from conformance.cluster.local.render import Layout
from conformance.cluster.mounts import unescape_mountinfo
from conformance.infra.errors import ClusterError

STATE = Path("/var/lib/ivc/local")
LAYOUT = Layout(STATE)
HOST_IP = "192.0.2.2"
ENDPOINT = "unix:///var/lib/ivc/local/run/crio/crio.sock"


def _flag(argv: list[str], name: str) -> str | None:
    values = [a.split("=", 1)[1] for a in argv if a.startswith(f"--{name}=")]
    assert len(values) <= 1, f"--{name} given twice"
    return values[0] if values else None


# --- versions and gates ---------------------------------------------------------------------


def test_parse_feature_gates() -> None:
    assert gates.parse_feature_gates("") == {}
    assert gates.parse_feature_gates("ImageVolume=false, Foo=TRUE") == {"ImageVolume": False, "Foo": True}
    for bad in ("ImageVolume", "ImageVolume=yes", "=true"):
        with pytest.raises(ClusterError):
            gates.parse_feature_gates(bad)


@pytest.mark.parametrize(
    ("version", "passthrough", "expected"),
    [
        ("v1.32.9", {}, {"ImageVolume": True}),
        ("v1.34.2", {}, {"ImageVolume": True}),
        ("v1.35.4", {}, {"ImageVolume": True}),
        ("v1.35.4", {"ImageVolume": False}, {"ImageVolume": False}),  # the negative check
        ("v1.36.3", {}, {}),  # GA and locked: never passed
        ("v1.38.0-beta.0", {}, {}),
        ("v1.36.3", {"ImageVolumeWithDigest": True}, {"ImageVolumeWithDigest": True}),
    ],
)
def test_gates_for(version: str, passthrough: dict[str, bool], expected: dict[str, bool]) -> None:
    assert gates.gates_for(version, passthrough) == expected


def test_feature_gates_flag() -> None:
    assert gates.flag({}) == []
    assert gates.flag({"B": False, "A": True}) == ["--feature-gates=A=true,B=false"]


# --- layout -------------------------------------------------------------------------------


def test_all_mutable_state_is_under_the_state_dir() -> None:
    paths = [
        LAYOUT.cluster_json,
        LAYOUT.kubeconfig,
        LAYOUT.logs,
        LAYOUT.pids,
        LAYOUT.pki,
        LAYOUT.etcd_data,
        LAYOUT.kubelet_root,
        LAYOUT.run,
        LAYOUT.cni_conf_dir,
        LAYOUT.cni_ipam_dir,
        LAYOUT.registry_storage,
        LAYOUT.crictl_wrapper,
        LAYOUT.registry_files.ca,
        LAYOUT.log("kubelet"),
    ]
    for path in paths:
        assert STATE in path.parents, path
    assert LAYOUT.log("crio") == STATE / "logs" / "crio.log"


# --- kubeadm --------------------------------------------------------------------------------


def test_kubeadm_config() -> None:
    init, cluster = yaml.safe_load_all(
        render.render_kubeadm_config(LAYOUT, k8s_version="v1.36.3", host_ip=HOST_IP, runtime_endpoint=ENDPOINT)
    )
    assert init["kind"] == "InitConfiguration"
    assert init["apiVersion"] == cluster["apiVersion"] == "kubeadm.k8s.io/v1beta4"
    assert init["nodeRegistration"]["name"] == render.NODE_NAME == "ivc-node"
    assert init["localAPIEndpoint"]["advertiseAddress"] == HOST_IP
    assert cluster["kubernetesVersion"] == "v1.36.3"  # never let kubeadm look up stable-1 online
    assert cluster["certificatesDir"] == str(STATE / "pki")
    assert {"127.0.0.1", "localhost", HOST_IP} <= set(cluster["apiServer"]["certSANs"])
    assert cluster["etcd"]["external"]["endpoints"] == ["http://127.0.0.1:2379"]
    assert init["nodeRegistration"]["criSocket"] == ENDPOINT


# --- CNI and crictl ----------------------------------------------------------------------


def test_cni_conflist() -> None:
    conflist = json.loads(
        cni.render_bridge_conflist(subnet=render.POD_SUBNET, bridge=render.CNI_BRIDGE, ipam_dir=LAYOUT.cni_ipam_dir)
    )
    assert conflist["cniVersion"] == "1.0.0"
    assert conflist["name"] == cni.NETWORK == "ivc"
    bridge, portmap = conflist["plugins"]
    assert bridge["type"] == "bridge" and bridge["bridge"] == "cni0"
    assert bridge["isGateway"] and bridge["ipMasq"] and bridge["hairpinMode"]
    assert bridge["ipam"]["type"] == "host-local"
    assert bridge["ipam"]["ranges"] == [[{"subnet": "10.85.0.0/16"}]]
    assert bridge["ipam"]["dataDir"] == str(STATE / "cni/networks")
    assert portmap == {"type": "portmap", "capabilities": {"portMappings": True}}


def test_crictl_yaml_and_wrapper() -> None:
    conf = yaml.safe_load(render.render_crictl_yaml(ENDPOINT))
    assert conf["runtime-endpoint"] == conf["image-endpoint"] == ENDPOINT
    wrapper = render.render_crictl_wrapper(Path("/cache/crictl"), STATE / "config/crictl.yaml")
    assert wrapper.startswith("#!/bin/sh\n")
    assert f'exec "/cache/crictl" --config "{STATE}/config/crictl.yaml" "$@"' in wrapper


# --- kubelet ------------------------------------------------------------------------------


def test_kubelet_config_1_36() -> None:
    conf = yaml.safe_load(render.render_kubelet_config(LAYOUT, runtime_endpoint=ENDPOINT, feature_gates={}))
    assert conf["kind"] == "KubeletConfiguration"
    assert conf["cgroupDriver"] == "cgroupfs"
    assert conf["failCgroupV1"] is False
    assert conf["failSwapOn"] is False
    assert conf["containerRuntimeEndpoint"] == conf["imageServiceEndpoint"] == ENDPOINT
    assert conf["authentication"]["webhook"]["enabled"] is True
    assert conf["authentication"]["anonymous"]["enabled"] is False
    assert conf["authentication"]["x509"]["clientCAFile"] == str(STATE / "pki/ca.crt")
    assert conf["authorization"]["mode"] == "Webhook"
    assert conf["evictionHard"]["imagefs.available"] == "1%"
    assert conf["evictionHard"]["nodefs.available"] == "1%"
    assert (conf["imageGCHighThresholdPercent"], conf["imageGCLowThresholdPercent"]) == (100, 99)
    assert "featureGates" not in conf  # GA-locked from 1.36


def test_kubelet_config_carries_the_gates() -> None:
    conf = yaml.safe_load(
        render.render_kubelet_config(LAYOUT, runtime_endpoint=ENDPOINT, feature_gates={"ImageVolume": False})
    )
    assert conf["featureGates"] == {"ImageVolume": False}


def test_kubelet_args() -> None:
    argv = render.kubelet_args(Path("/k/kubelet"), LAYOUT, host_ip=HOST_IP)
    assert argv[0] == "/k/kubelet"
    assert _flag(argv, "hostname-override") == "ivc-node"  # must equal the node cert's CN suffix
    assert _flag(argv, "node-ip") == HOST_IP
    assert _flag(argv, "root-dir") == str(STATE / "kubelet")
    assert _flag(argv, "kubeconfig") == str(STATE / "kubernetes/kubelet.conf")


# --- control plane -------------------------------------------------------------------------


def test_apiserver_args() -> None:
    argv = render.apiserver_args(
        Path("/k/kube-apiserver"),
        LAYOUT,
        host_ip=HOST_IP,
        feature_gates={},
        admission_plugins=["AlwaysPullImages"],
    )
    assert _flag(argv, "advertise-address") == HOST_IP
    assert _flag(argv, "etcd-servers") == "http://127.0.0.1:2379"
    assert _flag(argv, "enable-admission-plugins") == "NodeRestriction,AlwaysPullImages"
    assert _flag(argv, "authorization-mode") == "Node,RBAC"
    assert _flag(argv, "service-account-signing-key-file") == str(STATE / "pki/sa.key")
    assert _flag(argv, "feature-gates") is None


def test_every_control_plane_component_gets_the_gates() -> None:
    kwargs = {"feature_gates": gates.gates_for("v1.34.2")}
    for argv in (
        render.apiserver_args(Path("a"), LAYOUT, host_ip=HOST_IP, admission_plugins=(), **kwargs),
        render.controller_manager_args(Path("c"), LAYOUT, **kwargs),
        render.scheduler_args(Path("s"), LAYOUT, **kwargs),
    ):
        assert _flag(argv, "feature-gates") == "ImageVolume=true"


def test_controller_manager_args_publish_root_ca_and_tokens() -> None:
    argv = render.controller_manager_args(Path("c"), LAYOUT, feature_gates={})
    assert _flag(argv, "root-ca-file") == str(STATE / "pki/ca.crt")
    assert _flag(argv, "service-account-private-key-file") == str(STATE / "pki/sa.key")
    assert _flag(argv, "leader-elect") == "false"
    assert _flag(argv, "bind-address") == "127.0.0.1"


def test_etcd_args() -> None:
    argv = render.etcd_args(Path("/e/etcd"), LAYOUT)
    assert _flag(argv, "data-dir") == str(STATE / "etcd")
    assert _flag(argv, "listen-client-urls") == "http://127.0.0.1:2379"
    assert _flag(argv, "listen-peer-urls") == "http://127.0.0.1:2380"


# --- registries -------------------------------------------------------------------------


def test_plain_registry_config() -> None:
    conf = yaml.safe_load(registries.render_config(addr="127.0.0.1:5000", root=STATE / "registry/plain"))
    assert conf["version"] == 0.1
    assert conf["http"]["addr"] == "127.0.0.1:5000"  # loopback only, unlike the package's :5000
    assert conf["storage"]["filesystem"]["rootdirectory"] == str(STATE / "registry/plain")
    assert conf["storage"]["delete"]["enabled"] is True
    assert "tls" not in conf["http"] and "auth" not in conf


def test_auth_registry_config_is_private(tmp_path: Path) -> None:
    files = LAYOUT.registry_files
    path = registries.write_config(
        tmp_path / "auth.yml", addr="127.0.0.1:5443", root=STATE / "registry/auth",
        tls=(files.certificate, files.key), htpasswd=files.htpasswd,
    )  # fmt: skip
    conf = yaml.safe_load(path.read_text())
    assert conf["http"]["tls"] == {
        "certificate": str(STATE / "pki/registry.crt"),
        "key": str(STATE / "pki/registry.key"),
    }
    assert conf["auth"]["htpasswd"]["path"] == str(STATE / "pki/registry.htpasswd")
    assert path.stat().st_mode & 0o077 == 0


# --- provider options and small helpers ------------------------------------------------------


def test_provider_takes_typed_options(tmp_path: Path) -> None:
    options = ClusterOptions.parse(
        "local", {"feature_gates": "ImageVolumeWithDigest=true", "k8s_version": "1.35.4", "state_dir": str(tmp_path)}
    )
    provider = LocalProvider(options)
    plan = provider.plan
    assert plan.gates == {"ImageVolume": True, "ImageVolumeWithDigest": True}
    assert plan.k8s_version == "v1.35.4" and plan.runtime_version == "v1.36.3"
    assert provider.layout.state == tmp_path
    with pytest.raises(ClusterError, match="no healthy local cluster"):
        provider.env()


def test_up_refuses_non_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    with pytest.raises(ClusterError, match="as root"):
        LocalProvider(ClusterOptions(provider="local", state_dir=Path("/nonexistent/ivc"))).up()


def test_iptables_and_mountinfo_helpers() -> None:
    assert _jump_target(["POSTROUTING", "-s", "10.85.0.2/32", "-j", "CNI-abc"]) == "CNI-abc"
    assert _jump_target(["INPUT", "-p", "tcp"]) is None
    assert unescape_mountinfo(r"/var/lib/with\040space") == "/var/lib/with space"
