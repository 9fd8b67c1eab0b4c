"""Pure parts of the kind provider: names, the kind cluster config, registry wiring documents.

Unit-tested in tests/test_kind_config.py; nothing here runs a tool.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import yaml

from conformance.cluster import gates
from conformance.cluster.errors import ClusterError

DEFAULT_CLUSTER_NAME = "ivc"
NODE_IMAGE_REPO = "ivc/kind-node-crio"
CRIO_SOCKET = "unix:///var/run/crio/crio.sock"

REGISTRY_NAME = "ivc-registry"
REGISTRY_HOST_PORT = 5001
REGISTRY_HOST = f"localhost:{REGISTRY_HOST_PORT}"  # what this process pushes to and Pods reference
REGISTRY_IN_NETWORK = f"{REGISTRY_NAME}:5000"  # what the node's runtime actually dials
REGISTRIES_DROP_IN = "/etc/containers/registries.conf.d/50-ivc-registry.conf"
KIND_NETWORK = "kind"


def validate_cluster_name(name: str) -> str:
    if not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name):
        raise ClusterError(f"kind cluster name {name!r} must be lowercase letters, digits and '-'")
    return name


def crio_stream(crio_version: str) -> str:
    """`v1.36.3` → `v1.36`: the OBS stream isv:cri-o:stable:v1.XX that the node-image recipe installs."""
    major, minor = crio_version.lstrip("v").split(".")[:2]
    return f"v{major}.{minor}"


def node_image_tag(k8s_version: str, crio_version: str) -> str:
    """`ivc/kind-node-crio:v1.36.1-crio1.36`: one locally built image per (Kubernetes, CRI-O) pair."""
    return f"{NODE_IMAGE_REPO}:{k8s_version}-crio{crio_stream(crio_version)[1:]}"


def version_from_image(image: str | None) -> str | None:
    match = re.search(r":(v\d+\.\d+\.\d+)", image or "")
    return match[1] if match else None


class _LiteralDumper(yaml.SafeDumper):
    """Multi-line strings (the kubeadm patches) as `|` blocks, the way kind's docs write them."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_LiteralDumper.add_representer(str, _represent_str)


def _patch(document: dict[str, object]) -> str:
    # No apiVersion: kind then applies the patch to whatever kubeadm API version the node uses.
    return yaml.safe_dump(document, sort_keys=False)


def render_kind_config(
    k8s_version: str,
    *,
    feature_gates: Mapping[str, bool] | None = None,
    admission_plugins: Sequence[str] = (),
) -> str:
    """The kind cluster config for one CRI-O control-plane node (the node image is passed separately)."""
    config: dict[str, object] = {"kind": "Cluster", "apiVersion": "kind.x-k8s.io/v1alpha4"}
    cluster_gates = gates.gates_for(k8s_version, feature_gates)
    if cluster_gates:
        config["featureGates"] = cluster_gates
    # 1.35 made cgroup v1 hosts fatal for the kubelet; false is harmless on cgroup v2 hosts.
    cluster_patches = [_patch({"kind": "KubeletConfiguration", "failCgroupV1": False})]
    if admission_plugins:
        plugins = list(dict.fromkeys(["NodeRestriction", *admission_plugins]))  # keep kubeadm's default
        cluster_patches.append(
            _patch(
                {
                    "kind": "ClusterConfiguration",
                    "apiServer": {"extraArgs": {"enable-admission-plugins": ",".join(plugins)}},
                }
            )
        )
    config["kubeadmConfigPatches"] = cluster_patches
    # kind's kubeadm template hard-codes containerd's socket; a joining worker would need the Join patch too.
    config["nodes"] = [
        {
            "role": "control-plane",
            "kubeadmConfigPatches": [
                _patch({"kind": kind, "nodeRegistration": {"criSocket": CRIO_SOCKET}})
                for kind in ("InitConfiguration", "JoinConfiguration")
            ],
        }
    ]
    header = (
        f"# kind cluster on CRI-O for Kubernetes {k8s_version}, rendered by "
        "conformance.cluster.kind.config.render_kind_config.\n"
    )
    return header + yaml.dump(config, Dumper=_LiteralDumper, sort_keys=False, default_flow_style=False)


def registries_drop_in() -> str:
    """containers-registries.conf(5) drop-in: Pods say localhost:5001, CRI-O dials the registry container."""
    return (
        "# Written by the ivc conformance suite: localhost inside the node is not the host's localhost.\n"
        "[[registry]]\n"
        f'prefix = "{REGISTRY_HOST}"\n'
        f'location = "{REGISTRY_IN_NETWORK}"\n'
        "insecure = true\n"
    )


def containerd_hosts_toml() -> str:
    """The same redirect for stock containerd nodes (kind's documented pattern), used when reusing one."""
    return f'[host."http://{REGISTRY_IN_NETWORK}"]\n'


def local_registry_hosting() -> str:
    """KEP-1755 `localRegistryHosting.v1` document, so tools can discover the registry."""
    return (
        f'host: "{REGISTRY_HOST}"\n'
        f'hostFromClusterNetwork: "{REGISTRY_IN_NETWORK}"\n'
        'help: "https://kind.sigs.k8s.io/docs/user/local-registry/"\n'
    )


def parse_tool_version(text: str) -> tuple[int, int, int] | None:
    match = re.search(r"v?(\d+)\.(\d+)\.(\d+)", text)
    return (int(match[1]), int(match[2]), int(match[3])) if match else None
