"""The kind provider's pure parts: the cluster config by version and node count, registry wiring, node files."""

from __future__ import annotations

import json
import tomllib
from dataclasses import replace
from importlib.resources import files
from pathlib import Path

import pytest
import yaml

from conformance.cluster import ClusterOptions, admission
from conformance.cluster.kind import KindProvider, node_files
from conformance.cluster.kind.cluster_config import CRIO_SOCKET, render_kind_config
from conformance.cluster.kind.node_image import Recipe, node_setup
from conformance.cluster.kind.registry import routes
from conformance.cluster.pins import KUBERNETES as DEFAULT_K8S_VERSION
from conformance.cluster.registries import RegistryFiles
from conformance.cluster.runtimes import runtime
from conformance.infra.errors import ClusterError
from conformance.infra.versions import Version


def rendered(version: str, **kwargs: object) -> dict:
    return yaml.safe_load(render_kind_config(version, **kwargs))


def patches(config: dict) -> dict[str, dict]:
    return {p["kind"]: p for p in map(yaml.safe_load, config["kubeadmConfigPatches"])}


@pytest.mark.parametrize("version", ["v1.31.0", "v1.33.13", "v1.34.4", "v1.35.4"])
def test_gate_is_set_before_ga(version: str) -> None:
    assert rendered(version)["featureGates"] == {"ImageVolume": True}


@pytest.mark.parametrize("version", ["v1.36.0", DEFAULT_K8S_VERSION, "v1.37.2", "v1.38.0-beta.0"])
def test_gate_is_absent_once_locked(version: str) -> None:
    # GA + LockToDefault in 1.36; the gate's removal (1.39) would make components exit.
    assert "featureGates" not in rendered(version)


@pytest.mark.parametrize("nodes", [1, 2, 4])
def test_one_control_plane_and_workers(nodes: int) -> None:
    config = rendered("v1.36.3", nodes=nodes)
    assert (config["kind"], config["apiVersion"]) == ("Cluster", "kind.x-k8s.io/v1alpha4")
    assert [node["role"] for node in config["nodes"]] == ["control-plane"] + ["worker"] * (nodes - 1)
    # Nothing per node: every worker joins with the cluster-level patches.
    assert all(set(node) == {"role"} for node in config["nodes"])


def test_cluster_level_patches_make_every_node_join_crio_on_cgroup_v1() -> None:
    found = patches(rendered("v1.35.4"))
    for kind in ("InitConfiguration", "JoinConfiguration"):
        assert found[kind]["nodeRegistration"] == {
            "criSocket": CRIO_SOCKET,
            "ignorePreflightErrors": ["SystemVerification"],
        }
    assert found["KubeletConfiguration"] == {"kind": "KubeletConfiguration", "failCgroupV1": False}
    # kind then applies them to whichever kubeadm API version (v1beta3/v1beta4) the node speaks.
    assert all("apiVersion" not in p for p in found.values())


def test_the_cri_socket_is_the_node_images_crio() -> None:
    assert f"unix://{runtime('cri-o').socket(node_setup('cri-o'))}" == CRIO_SOCKET


def test_admission_plugins_per_kubeadm_api() -> None:
    # v1beta3 (kind for < 1.36): extraArgs is a map, a strategic patch merges into it.
    old = patches(rendered("v1.35.4", admission_plugins=["AlwaysPullImages"]))["ClusterConfiguration"]
    assert old["apiServer"]["extraArgs"] == {"enable-admission-plugins": "NodeRestriction,AlwaysPullImages"}
    # v1beta4 (>= 1.36): extraArgs is a list; append so kind's own entries stay.
    new = rendered("v1.36.3", admission_plugins=["AlwaysPullImages"])
    assert "ClusterConfiguration" not in patches(new)
    (json_patch,) = new["kubeadmConfigPatchesJSON6902"]
    assert (json_patch["version"], json_patch["kind"]) == ("v1beta4", "ClusterConfiguration")
    assert yaml.safe_load(json_patch["patch"]) == [
        {"op": "add", "path": "/apiServer/extraArgs/-",
         "value": {"name": "enable-admission-plugins", "value": "NodeRestriction,AlwaysPullImages"}}
    ]  # fmt: skip
    assert "kubeadmConfigPatchesJSON6902" not in rendered("v1.36.3")


def test_bad_versions_and_node_counts_are_refused() -> None:
    with pytest.raises(ClusterError, match=r"v1\.31 or newer"):
        render_kind_config("v1.30.4")
    with pytest.raises(ClusterError, match="locked on"):
        render_kind_config("v1.36.3", feature_gates={"ImageVolume": False})
    with pytest.raises(ClusterError, match="at least its control-plane"):
        render_kind_config("v1.36.3", nodes=0)
    with pytest.raises(ClusterError, match="not a node count"):
        ClusterOptions.parse("kind", {"nodes": "two"})


def test_checked_in_config_matches_the_renderer() -> None:
    checked_in = (files("conformance.kind_files") / "cluster-crio.yaml").read_text()
    assert checked_in == render_kind_config(DEFAULT_K8S_VERSION)


@pytest.mark.parametrize("name", ["cri-o", "containerd"])
def test_only_the_plain_registry_is_remapped(name: str, tmp_path: Path) -> None:
    # containers/image sends no credentials to a remapped location: the auth registry keeps its name.
    files = RegistryFiles(tmp_path)
    files.ca.write_text("PEM")
    wired = runtime(name).registry_files(replace(node_setup(name), registries=routes(files)))
    if name == "cri-o":
        conf = tomllib.loads(wired[Path("/etc/crio/registries.conf")])
        assert conf["registry"] == [
            {"prefix": "localhost:5001", "location": "ivc-registry:5000", "insecure": True},
            {"prefix": "ivc-auth-registry:5000", "location": "ivc-auth-registry:5000", "insecure": False},
        ]
        assert wired[Path("/etc/containers/certs.d/ivc-auth-registry:5000/ca.crt")] == "PEM"
    else:
        plain = tomllib.loads(wired[Path("/etc/containerd/certs.d/localhost:5001/hosts.toml")])
        assert plain["server"] == "http://ivc-registry:5000"
        auth = tomllib.loads(wired[Path("/etc/containerd/certs.d/ivc-auth-registry:5000/hosts.toml")])
        assert (
            auth["host"]["https://ivc-auth-registry:5000"]["ca"]
            == "/etc/containerd/certs.d/ivc-auth-registry:5000/ca.crt"
        )


def test_entrypoint_waits_for_multi_user_system_on_cgroup_v1() -> None:
    text = "x\n  log_info 'detected cgroup v1'\ny\n"
    patched = node_files.patch_entrypoint(text)
    assert "detected cgroup v1" not in patched and "multi-user target" in patched
    with pytest.raises(ValueError, match="review the node image recipe"):
        node_files.patch_entrypoint("an entrypoint of another kind release")


def test_pod_network_script_bridges_the_nodes_podcidr_and_routes_the_others() -> None:
    script = node_files.pod_network_script()
    assert script.startswith("#!/bin/bash\n")
    assert 'ip route replace "$cidr" via "$address"' in script
    template = script.split("conf='", 1)[1].split("'", 1)[0]
    conflist = json.loads(template.replace("@SUBNET@", "10.244.1.0/24"))
    bridge = conflist["plugins"][0]
    assert bridge["type"] == "bridge" and bridge["ipam"]["ranges"] == [[{"subnet": "10.244.1.0/24"}]]
    rbac = list(yaml.safe_load_all(node_files.default_cni_manifest()))
    assert rbac[0]["rules"] == [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "watch"]}]
    assert rbac[1]["subjects"][0]["name"] == "system:nodes"


def test_node_image_is_tagged_by_versions_and_keyed_by_its_inputs(tmp_path: Path) -> None:
    recipe = Recipe("v1.36.3", "cri-o", "v1.36.3", "v1.36.0", tmp_path)
    assert recipe.tag == "ivc/kind-node:v1.36.3-crio1.36.3"
    assert Recipe("v1.36.3", "containerd", "v2.3.7", "v1.36.0", tmp_path).tag == "ivc/kind-node:v1.36.3-containerd2.3.7"
    assert recipe.inputs_digest() == Recipe("v1.36.3", "cri-o", "v1.36.3", "v1.36.0", tmp_path / "x").inputs_digest()
    assert recipe.inputs_digest() != Recipe("v1.35.4", "cri-o", "v1.36.3", "v1.36.0", tmp_path).inputs_digest()


def test_tool_versions() -> None:
    assert Version.parse_or_none("kind v0.33.0 go1.26.1 linux/amd64") == Version(0, 33, 0)
    assert Version.parse_or_none("garbage") is None


def test_provider_validates_options_without_touching_docker() -> None:
    options = {"feature_gates": "ImageVolume=false", "admission_plugins": "AlwaysPullImages, Foo",
               "k8s_version": "1.35.4", "nodes": "3"}  # fmt: skip
    provider = KindProvider(ClusterOptions.parse("kind", options))
    assert provider.feature_gates == {"ImageVolume": False}
    assert provider.admission_plugins == ("AlwaysPullImages", "Foo")
    assert [r.tag for r in provider.recipes.values()] == ["ivc/kind-node:v1.35.4-crio1.36.3"]  # CRI-O is pinned
    assert not provider.mixed
    assert provider.nodes == 3 and provider.context == "kind-ivc"
    with pytest.raises(ClusterError, match="lowercase"):
        KindProvider(ClusterOptions(cluster_name="My_Cluster"))


def test_missing_docker_is_one_actionable_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("KIND_EXPERIMENTAL_PROVIDER", raising=False)
    with pytest.raises(ClusterError) as error:
        KindProvider(ClusterOptions()).up()
    assert str(error.value) == (
        "docker not found on PATH: install Docker (https://docs.docker.com/engine/install/), or start one with "
        "`scripts/dockerd start`, or use --cluster=local/existing"
    )


def test_mixed_nodes_get_an_image_and_a_cri_socket_each() -> None:
    provider = KindProvider(ClusterOptions.parse("kind", {"node_runtimes": "cri-o,cri-o,containerd:v2.1.9"}))
    assert provider.mixed and provider.nodes == 3
    assert sorted(r.tag for r in provider.recipes.values()) == [
        "ivc/kind-node:v1.36.3-containerd2.1.9",
        "ivc/kind-node:v1.36.3-crio1.36.3",
    ]
    assert provider.node_names() == ["ivc-control-plane", "ivc-worker", "ivc-worker2"]
    images = {label: f"image-of-{label}" for label in provider.recipes}
    config = yaml.safe_load(provider.cluster_config(images))
    sockets = [yaml.safe_load(n["kubeadmConfigPatches"][0])["nodeRegistration"]["criSocket"] for n in config["nodes"]]
    assert sockets == [CRIO_SOCKET, CRIO_SOCKET, "unix:///run/containerd/containerd.sock"]
    assert [n["image"] for n in config["nodes"]] == [
        "image-of-cri-o:v1.36.3",
        "image-of-cri-o:v1.36.3",
        "image-of-containerd:v2.1.9",
    ]
    # the cluster-level patches no longer name a socket
    assert "criSocket" not in patches(config)["JoinConfiguration"]["nodeRegistration"]


def test_node_runtimes_and_a_single_runtime_exclude_each_other() -> None:
    with pytest.raises(ClusterError, match="drop --runtime"):
        ClusterOptions.parse("kind", {"node_runtimes": "cri-o,containerd", "runtime": "containerd"})
    with pytest.raises(ClusterError, match="--nodes 3 and --node-runtimes name 2 nodes"):
        ClusterOptions.parse("kind", {"node_runtimes": "cri-o,containerd", "nodes": "3"})
    with pytest.raises(ClusterError, match="choose one of"):
        ClusterOptions.parse("kind", {"node_runtimes": "cri-o,youki"})


@pytest.mark.parametrize("version", ["v1.35.4", "v1.36.3"])
def test_pod_security_default_is_mounted_into_the_apiserver(version: str, tmp_path: Path) -> None:
    config = rendered(version, admission_config=str(tmp_path / "admission.yaml"))
    mount = config["nodes"][0]["extraMounts"][0]
    assert mount == {"hostPath": str(tmp_path / "admission.yaml"), "containerPath": admission.IN_NODE_PATH,
                     "readOnly": True}  # fmt: skip
    assert "extraMounts" not in config["nodes"][1]
    volumes = patches(config)["ClusterConfiguration"]["apiServer"]["extraVolumes"]
    assert volumes[0]["mountPath"] == admission.IN_NODE_PATH
    args = config.get("kubeadmConfigPatchesJSON6902")
    if version >= "v1.36":
        assert yaml.safe_load(args[0]["patch"])[0]["value"] == {
            "name": "admission-control-config-file",
            "value": admission.IN_NODE_PATH,
        }
    else:
        assert args is None


def test_the_admission_configuration_enforces_the_level_everywhere_but_kube_system() -> None:
    document = yaml.safe_load(admission.render_admission_configuration("restricted"))
    plugin = document["plugins"][0]
    assert plugin["name"] == "PodSecurity"
    assert plugin["configuration"]["defaults"]["enforce"] == "restricted"
    assert plugin["configuration"]["exemptions"]["namespaces"] == ["kube-system"]
