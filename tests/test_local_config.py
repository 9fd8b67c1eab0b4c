"""Unit tests of the local provider's pure rendering (configs and command lines); no cluster, no root."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
import yaml

from conformance.cluster.errors import ClusterError
from conformance.cluster.local import config
from conformance.cluster.local.config import Layout
from conformance.cluster.local.hostprep import _jump_target, _unescape
from conformance.cluster.local.provider import LocalProvider, resolve_crio_version

STATE = Path("/var/lib/ivc/local")
LAYOUT = Layout(STATE)
HOST_IP = "192.0.2.2"


def _flag(argv: list[str], name: str) -> str | None:
    values = [a.split("=", 1)[1] for a in argv if a.startswith(f"--{name}=")]
    assert len(values) <= 1, f"--{name} given twice"
    return values[0] if values else None


# --- versions and gates ---------------------------------------------------------------------


def test_minor_version() -> None:
    assert config.minor_version("v1.36.3") == (1, 36)
    assert config.minor_version("1.35.4") == (1, 35)
    with pytest.raises(ValueError):
        config.minor_version("latest")


def test_parse_feature_gates() -> None:
    assert config.parse_feature_gates("") == {}
    assert config.parse_feature_gates("ImageVolume=false, Foo=TRUE") == {"ImageVolume": False, "Foo": True}
    for bad in ("ImageVolume", "ImageVolume=yes", "=true"):
        with pytest.raises(ValueError):
            config.parse_feature_gates(bad)


@pytest.mark.parametrize(
    ("version", "passthrough", "expected"),
    [
        ("v1.33.5", {}, {"ImageVolume": True}),
        ("v1.34.2", {}, {"ImageVolume": True}),
        ("v1.35.4", {}, {"ImageVolume": True}),
        ("v1.35.4", {"ImageVolume": False}, {"ImageVolume": False}),  # the negative check
        ("v1.36.3", {}, {}),  # GA and locked: never passed
        ("v1.37.1", {}, {}),
        ("v1.36.3", {"ImageVolumeWithDigest": True}, {"ImageVolumeWithDigest": True}),
    ],
)
def test_effective_feature_gates(version: str, passthrough: dict[str, bool], expected: dict[str, bool]) -> None:
    assert config.effective_feature_gates(version, passthrough) == expected


def test_feature_gates_flag() -> None:
    assert config.feature_gates_flag({}) == []
    assert config.feature_gates_flag({"B": False, "A": True}) == ["--feature-gates=A=true,B=false"]


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
        LAYOUT.storage_root,
        LAYOUT.storage_runroot,
        LAYOUT.namespaces_dir,
        LAYOUT.cni_conf_dir,
        LAYOUT.cni_ipam_dir,
        LAYOUT.registry_storage,
        LAYOUT.crictl_wrapper,
        LAYOUT.registry_ca,
        LAYOUT.log("kubelet"),
    ]
    for path in paths:
        assert STATE in path.parents, path
    assert LAYOUT.log("crio") == STATE / "logs" / "crio.log"


# --- kubeadm --------------------------------------------------------------------------------


def test_kubeadm_config() -> None:
    init, cluster = yaml.safe_load_all(config.render_kubeadm_config(LAYOUT, k8s_version="v1.36.3", host_ip=HOST_IP))
    assert init["kind"] == "InitConfiguration"
    assert init["apiVersion"] == cluster["apiVersion"] == "kubeadm.k8s.io/v1beta4"
    assert init["nodeRegistration"]["name"] == config.NODE_NAME == "ivc-node"
    assert init["localAPIEndpoint"]["advertiseAddress"] == HOST_IP
    assert cluster["kubernetesVersion"] == "v1.36.3"  # never let kubeadm look up stable-1 online
    assert cluster["certificatesDir"] == str(STATE / "pki")
    assert {"127.0.0.1", "localhost", HOST_IP} <= set(cluster["apiServer"]["certSANs"])
    assert cluster["etcd"]["external"]["endpoints"] == ["http://127.0.0.1:2379"]


# --- CRI-O and friends --------------------------------------------------------------------


def test_crio_conf() -> None:
    text = config.render_crio_conf(
        LAYOUT,
        pause_image="127.0.0.1:5000/ivc/pause:3.10.1",
        pinns_path="/var/cache/ivc/cri-o-v1.36.3/pinns",
        cni_plugin_dirs=["/usr/lib/cni"],
    )
    conf = tomllib.loads(text)["crio"]
    assert conf["root"] == str(STATE / "containers/storage")
    assert conf["runroot"] == str(STATE / "containers/run")
    assert conf["storage_driver"] == "overlay"
    assert conf["api"]["listen"] == "/var/run/crio/crio.sock"
    runtime = conf["runtime"]
    assert runtime["cgroup_manager"] == "cgroupfs"
    assert runtime["default_runtime"] == "runc"  # bookworm crun 1.8.1 rejects runtime-spec > 1.0
    assert runtime["pinns_path"] == "/var/cache/ivc/cri-o-v1.36.3/pinns"
    assert list(runtime["runtimes"]) == ["runc"]
    assert runtime["runtimes"]["runc"]["monitor_cgroup"] == "pod"  # cgroupfs accepts only "pod" or ""
    assert runtime["runtimes"]["runc"]["monitor_path"] == "/usr/bin/conmon"
    assert runtime["runtimes"]["runc"]["runtime_path"] == "/usr/sbin/runc"
    image = conf["image"]
    assert image["pause_image"] == "127.0.0.1:5000/ivc/pause:3.10.1"
    assert image["pause_command"] == "/pause"
    assert image["oci_artifact_mount_support"] is True
    assert "insecure_registries" not in image  # a no-op in CRI-O; registries.conf does it
    assert conf["network"]["plugin_dirs"] == ["/usr/lib/cni"]
    assert conf["network"]["network_dir"] == str(STATE / "cni/net.d")
    assert conf["nri"]["enable_nri"] is False


def test_crio_conf_with_runc_wrapper() -> None:
    text = config.render_crio_conf(
        LAYOUT, pause_image="p", pinns_path="/p", cni_plugin_dirs=[], runc_path=str(STATE / "bin/runc")
    )
    assert tomllib.loads(text)["crio"]["runtime"]["runtimes"]["runc"]["runtime_path"] == str(STATE / "bin/runc")


def test_runc_wrapper_drops_hugetlb_limits() -> None:
    wrapper = config.render_runc_wrapper("/usr/sbin/runc")
    assert wrapper.startswith("#!/bin/sh\n")
    assert "del(.linux.resources.hugepageLimits?)" in wrapper  # create: the bundle's config.json
    assert "del(.hugepageLimits?)" in wrapper  # update --resources -
    assert wrapper.rstrip().endswith('exec /usr/sbin/runc "$@"')


def test_crio_args_keep_host_config_out() -> None:
    argv = config.crio_args(Path("/c/crio"), LAYOUT)
    assert _flag(argv, "config") == str(STATE / "config/crio.conf")
    assert _flag(argv, "config-dir") == str(STATE / "config/crio.conf.d")
    assert _flag(argv, "registries-conf") == str(STATE / "config/registries.conf")
    assert _flag(argv, "registries-conf-dir") == str(STATE / "config/registries.conf.d")
    env = config.crio_env(LAYOUT, "/usr/bin")
    assert env["CONTAINERS_STORAGE_CONF"] == str(STATE / "config/storage.conf")
    assert tomllib.loads(config.render_storage_conf(LAYOUT))["storage"]["graphroot"] == str(
        STATE / "containers/storage"
    )


def test_registries_conf_marks_only_the_plain_registry_insecure() -> None:
    conf = tomllib.loads(config.render_registries_conf())
    assert conf["unqualified-search-registries"] == []
    assert conf["registry"] == [{"location": "127.0.0.1:5000", "insecure": True}]


def test_policy_json() -> None:
    assert json.loads(config.render_policy_json()) == {"default": [{"type": "insecureAcceptAnything"}]}


def test_cni_conflist() -> None:
    conflist = json.loads(config.render_cni_conflist(LAYOUT))
    assert conflist["cniVersion"] == "1.0.0"
    assert conflist["name"] == config.CNI_NETWORK
    bridge, portmap = conflist["plugins"]
    assert bridge["type"] == "bridge" and bridge["bridge"] == "cni0"
    assert bridge["isGateway"] and bridge["ipMasq"] and bridge["hairpinMode"]
    assert bridge["ipam"]["type"] == "host-local"
    assert bridge["ipam"]["ranges"] == [[{"subnet": "10.85.0.0/16"}]]
    assert bridge["ipam"]["dataDir"] == str(STATE / "cni/networks")
    assert portmap == {"type": "portmap", "capabilities": {"portMappings": True}}


def test_crictl_yaml_and_wrapper() -> None:
    conf = yaml.safe_load(config.render_crictl_yaml())
    assert conf["runtime-endpoint"] == conf["image-endpoint"] == "unix:///var/run/crio/crio.sock"
    wrapper = config.render_crictl_wrapper(Path("/cache/crictl"), STATE / "config/crictl.yaml")
    assert wrapper.startswith("#!/bin/sh\n")
    assert f'exec "/cache/crictl" --config "{STATE}/config/crictl.yaml" "$@"' in wrapper


# --- kubelet ------------------------------------------------------------------------------


def test_kubelet_config_1_36() -> None:
    conf = yaml.safe_load(config.render_kubelet_config(LAYOUT, k8s_version="v1.36.3", feature_gates={}))
    assert conf["kind"] == "KubeletConfiguration"
    assert conf["cgroupDriver"] == "cgroupfs"
    assert conf["failCgroupV1"] is False
    assert conf["failSwapOn"] is False
    assert conf["containerRuntimeEndpoint"] == "unix:///var/run/crio/crio.sock"
    assert conf["authentication"]["webhook"]["enabled"] is True
    assert conf["authentication"]["anonymous"]["enabled"] is False
    assert conf["authentication"]["x509"]["clientCAFile"] == str(STATE / "pki/ca.crt")
    assert conf["authorization"]["mode"] == "Webhook"
    assert conf["evictionHard"]["imagefs.available"] == "1%"
    assert conf["evictionHard"]["nodefs.available"] == "1%"
    assert (conf["imageGCHighThresholdPercent"], conf["imageGCLowThresholdPercent"]) == (100, 99)
    assert "featureGates" not in conf  # GA-locked from 1.36


def test_kubelet_config_gates_below_1_36() -> None:
    conf = yaml.safe_load(config.render_kubelet_config(LAYOUT, k8s_version="v1.34.2", feature_gates={}))
    assert conf["featureGates"] == {"ImageVolume": True}
    conf = yaml.safe_load(
        config.render_kubelet_config(LAYOUT, k8s_version="v1.35.4", feature_gates={"ImageVolume": False})
    )
    assert conf["featureGates"] == {"ImageVolume": False}


def test_kubelet_args() -> None:
    argv = config.kubelet_args(Path("/k/kubelet"), LAYOUT, host_ip=HOST_IP)
    assert argv[0] == "/k/kubelet"
    assert _flag(argv, "hostname-override") == "ivc-node"  # must equal the node cert's CN suffix
    assert _flag(argv, "node-ip") == HOST_IP
    assert _flag(argv, "root-dir") == str(STATE / "kubelet")
    assert _flag(argv, "kubeconfig") == str(STATE / "kubernetes/kubelet.conf")


# --- control plane -------------------------------------------------------------------------


def test_apiserver_args() -> None:
    argv = config.apiserver_args(
        Path("/k/kube-apiserver"),
        LAYOUT,
        host_ip=HOST_IP,
        feature_gates={},
        admission_plugins=["AlwaysPullImages"],
        k8s_version="v1.36.3",
    )
    assert _flag(argv, "advertise-address") == HOST_IP
    assert _flag(argv, "etcd-servers") == "http://127.0.0.1:2379"
    assert _flag(argv, "enable-admission-plugins") == "NodeRestriction,AlwaysPullImages"
    assert _flag(argv, "authorization-mode") == "Node,RBAC"
    assert _flag(argv, "service-account-signing-key-file") == str(STATE / "pki/sa.key")
    assert _flag(argv, "feature-gates") is None


def test_control_plane_gates_follow_the_version() -> None:
    kwargs = {"feature_gates": {}, "k8s_version": "v1.34.2"}
    for argv in (
        config.apiserver_args(Path("a"), LAYOUT, host_ip=HOST_IP, admission_plugins=(), **kwargs),
        config.controller_manager_args(Path("c"), LAYOUT, **kwargs),
        config.scheduler_args(Path("s"), LAYOUT, **kwargs),
    ):
        assert _flag(argv, "feature-gates") == "ImageVolume=true"


def test_controller_manager_args_publish_root_ca_and_tokens() -> None:
    argv = config.controller_manager_args(Path("c"), LAYOUT, feature_gates={}, k8s_version="v1.36.3")
    assert _flag(argv, "root-ca-file") == str(STATE / "pki/ca.crt")
    assert _flag(argv, "service-account-private-key-file") == str(STATE / "pki/sa.key")
    assert _flag(argv, "leader-elect") == "false"
    assert _flag(argv, "bind-address") == "127.0.0.1"


def test_etcd_args() -> None:
    argv = config.etcd_args(Path("/e/etcd"), LAYOUT)
    assert _flag(argv, "data-dir") == str(STATE / "etcd")
    assert _flag(argv, "listen-client-urls") == "http://127.0.0.1:2379"
    assert _flag(argv, "listen-peer-urls") == "http://127.0.0.1:2380"


# --- registries -------------------------------------------------------------------------


def test_plain_registry_config() -> None:
    conf = yaml.safe_load(
        config.render_registry_config(addr="127.0.0.1:5000", root=STATE / "registry/plain", secret="s")
    )
    assert conf["version"] == 0.1
    assert conf["http"]["addr"] == "127.0.0.1:5000"  # loopback only, unlike the package's :5000
    assert conf["storage"]["filesystem"]["rootdirectory"] == str(STATE / "registry/plain")
    assert conf["storage"]["delete"]["enabled"] is True
    assert "tls" not in conf["http"] and "auth" not in conf


def test_auth_registry_config() -> None:
    conf = yaml.safe_load(
        config.render_registry_config(
            addr="127.0.0.1:5443",
            root=STATE / "registry/auth",
            secret="s",
            tls=(STATE / "pki/registry.crt", STATE / "pki/registry.key"),
            htpasswd=STATE / "pki/registry.htpasswd",
        )
    )
    assert conf["http"]["tls"] == {
        "certificate": str(STATE / "pki/registry.crt"),
        "key": str(STATE / "pki/registry.key"),
    }
    assert conf["auth"]["htpasswd"]["path"] == str(STATE / "pki/registry.htpasswd")


# --- provider options and small helpers ------------------------------------------------------


def test_provider_accepts_flag_strings() -> None:
    provider = LocalProvider(feature_gates="ImageVolume=false", admission_plugins="AlwaysPullImages, Foo")
    assert provider.feature_gates == {"ImageVolume": False}
    assert provider.admission_plugins == ["AlwaysPullImages", "Foo"]
    assert provider.k8s_version == "v1.36.3" and provider.crio_version == "v1.36.3"
    assert "export KUBECONFIG=/var/lib/ivc/local/kubeconfig" in provider.env()
    assert "export IVC_REGISTRY=127.0.0.1:5000" in provider.env()
    with pytest.raises(ClusterError):
        LocalProvider(feature_gates="ImageVolume")


def test_resolve_crio_version() -> None:
    assert resolve_crio_version("v1.36") == "v1.36.3"
    assert resolve_crio_version("1.35.6") == "v1.35.6"
    with pytest.raises(ClusterError):
        resolve_crio_version("v1.34")


def test_up_refuses_non_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    with pytest.raises(ClusterError, match="as root"):
        LocalProvider(state_dir="/nonexistent/ivc").up()


def test_iptables_and_mountinfo_helpers() -> None:
    assert _jump_target(["POSTROUTING", "-s", "10.85.0.2/32", "-j", "CNI-abc"]) == "CNI-abc"
    assert _jump_target(["INPUT", "-p", "tcp"]) is None
    assert _unescape(r"/var/lib/with\040space") == "/var/lib/with space"
