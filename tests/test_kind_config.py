"""The kind provider's pure parts: config rendering by version, names, node-side files (no Docker, no cluster)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import yaml

from conformance.cluster import ClusterOptions
from conformance.cluster.errors import ClusterError
from conformance.cluster.gates import gates_for
from conformance.cluster.kind import KindProvider
from conformance.cluster.kind.config import (
    CRIO_SOCKET,
    crio_stream,
    node_image_tag,
    parse_tool_version,
    registries_drop_in,
    render_kind_config,
)
from conformance.cluster.kind.provider import DEFAULT_K8S_VERSION

REPO = Path(__file__).resolve().parents[1]


def rendered(version: str, **kwargs: object) -> dict:
    return yaml.safe_load(render_kind_config(version, **kwargs))


def cluster_patches(config: dict) -> list[dict]:
    return [yaml.safe_load(patch) for patch in config["kubeadmConfigPatches"]]


def node_patches(config: dict) -> list[dict]:
    (node,) = config["nodes"]
    return [yaml.safe_load(patch) for patch in node["kubeadmConfigPatches"]]


@pytest.mark.parametrize("version", ["v1.31.0", "v1.33.1", "v1.34.0", "v1.35.0", "v1.35.4"])
def test_gate_is_set_before_ga(version: str) -> None:
    assert rendered(version)["featureGates"] == {"ImageVolume": True}


@pytest.mark.parametrize("version", ["v1.36.0", DEFAULT_K8S_VERSION, "v1.37.0-rc.1", "v1.38.0"])
def test_gate_is_absent_once_locked(version: str) -> None:
    # GA + LockToDefault in 1.36; a removed gate (≈1.38) would make components exit.
    assert "featureGates" not in rendered(version)


def test_one_control_plane_node_on_crio_socket() -> None:
    config = rendered("v1.35.0")
    assert config["kind"] == "Cluster"
    assert config["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    assert [node["role"] for node in config["nodes"]] == ["control-plane"]
    patches = node_patches(config)
    assert {p["kind"] for p in patches} == {"InitConfiguration", "JoinConfiguration"}
    assert all(p["nodeRegistration"] == {"criSocket": "unix:///var/run/crio/crio.sock"} for p in patches)
    assert CRIO_SOCKET == "unix:///var/run/crio/crio.sock"


@pytest.mark.parametrize("version", ["v1.31.0", "v1.35.0", "v1.36.1"])
def test_fail_cgroup_v1_is_disabled_for_the_kubelet(version: str) -> None:
    kubelet = [p for p in cluster_patches(rendered(version)) if p["kind"] == "KubeletConfiguration"]
    assert kubelet == [{"kind": "KubeletConfiguration", "failCgroupV1": False}]


def test_patches_carry_no_api_version() -> None:
    # kind then applies them to whichever kubeadm API version (v1beta3/v1beta4) the node speaks.
    config = rendered("v1.35.0", admission_plugins=["AlwaysPullImages"])
    assert all("apiVersion" not in p for p in cluster_patches(config) + node_patches(config))


def test_admission_plugins_keep_node_restriction() -> None:
    (cluster,) = [
        p
        for p in cluster_patches(rendered("v1.36.1", admission_plugins=["AlwaysPullImages"]))
        if p["kind"] == "ClusterConfiguration"
    ]
    assert cluster["apiServer"]["extraArgs"] == {"enable-admission-plugins": "NodeRestriction,AlwaysPullImages"}
    assert all(p["kind"] != "ClusterConfiguration" for p in cluster_patches(rendered("v1.36.1")))


def test_requested_gates() -> None:
    assert gates_for("v1.35.0", {"ImageVolume": False}) == {"ImageVolume": False}
    assert gates_for("v1.34.0", {"Foo": True}) == {"Foo": True, "ImageVolume": True}
    assert gates_for("v1.36.1", {"ImageVolume": True, "Foo": False}) == {"Foo": False}
    with pytest.raises(ClusterError, match="locked on"):
        gates_for("v1.36.1", {"ImageVolume": False})


def test_versions_without_image_volumes_are_refused() -> None:
    with pytest.raises(ClusterError, match=r"v1\.31 or newer"):
        render_kind_config("v1.30.4")


def test_checked_in_config_matches_the_renderer() -> None:
    assert (REPO / "kind" / "cluster-crio.yaml").read_text() == render_kind_config(DEFAULT_K8S_VERSION)


def test_containerd_comparison_config_is_stock_kind() -> None:
    config = yaml.safe_load((REPO / "kind" / "cluster-containerd.yaml").read_text())
    assert "criSocket" not in yaml.safe_dump(config)
    assert config["nodes"][0]["image"].startswith("kindest/node:v1.3")
    assert cluster_patches(config) == [{"kind": "KubeletConfiguration", "failCgroupV1": False}]


def test_node_image_names() -> None:
    assert node_image_tag("v1.36.1", "v1.36.3") == "ivc/kind-node-crio:v1.36.1-crio1.36"
    assert node_image_tag("v1.35.4", "v1.34.0") == "ivc/kind-node-crio:v1.35.4-crio1.34"
    assert crio_stream("v1.37.0-rc.1") == "v1.37"


def test_registry_drop_in_maps_localhost_to_the_registry_container() -> None:
    (entry,) = tomllib.loads(registries_drop_in())["registry"]
    assert entry == {"prefix": "localhost:5001", "location": "ivc-registry:5000", "insecure": True}


def test_dockerfile_follows_the_crio_recipe() -> None:
    text = (REPO / "kind" / "node-crio.Dockerfile").read_text()
    assert "FROM ${KIND_NODE_IMAGE}" in text
    assert "download.opensuse.org/repositories/isv:/cri-o:/stable:/${CRIO_VERSION}/deb" in text
    assert "systemctl disable containerd && systemctl enable crio" in text
    assert "runtime-endpoint: unix:///var/run/crio/crio.sock" in text


def test_tool_versions() -> None:
    assert parse_tool_version("kind v0.32.0 go1.26.1 linux/amd64") == (0, 32, 0)
    assert parse_tool_version("garbage") is None


def test_provider_validates_options_without_touching_docker() -> None:
    options = {
        "feature_gates": "ImageVolume=false",
        "admission_plugins": "AlwaysPullImages, Foo",
        "k8s_version": "1.35.4",
    }
    provider = KindProvider(ClusterOptions.parse("kind", options))
    assert provider.feature_gates == {"ImageVolume": False}
    assert provider.admission_plugins == ("AlwaysPullImages", "Foo")
    assert provider.node_image == "ivc/kind-node-crio:v1.35.4-crio1.36"  # CRI-O is pinned, not per minor
    assert provider.context == "kind-ivc"
    with pytest.raises(ClusterError, match="lowercase"):
        KindProvider(ClusterOptions(cluster_name="My_Cluster"))


def test_missing_kind_is_one_actionable_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("KIND_EXPERIMENTAL_PROVIDER", raising=False)
    with pytest.raises(ClusterError) as error:
        KindProvider(ClusterOptions()).up()
    assert str(error.value) == (
        "kind not found on PATH: install kind >= 0.27 (https://kind.sigs.k8s.io/docs/user/quick-start/#installation) "
        "or use --cluster=local/existing"
    )
