"""Pure parts of the kind provider: names, the kind cluster config, registry wiring documents.

Unit-tested in tests/test_kind_config.py; nothing here runs a tool.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import yaml

from conformance.cluster import gates
from conformance.cluster.errors import ClusterError
from conformance.versions import Version

DEFAULT_CLUSTER_NAME = "ivc"
CRIO_SOCKET = "unix:///run/crio/crio.sock"  # the node image's CRI-O (NodeSetup run_dir /run)
KUBEADM_V1BETA4 = Version(1, 36)  # kind 0.33 writes kubeadm v1beta4 from 1.36, v1beta3 before


@dataclass(frozen=True)
class RegistryContainer:
    """A registry container beside the cluster: Pods and this process say `localhost:<port>`, a node's
    runtime dials `<name>:5000` on the kind network (localhost inside a node is not the host)."""

    name: str
    host_port: int
    tls: bool

    @property
    def host(self) -> str:
        return f"localhost:{self.host_port}"

    @property
    def in_network(self) -> str:
        return f"{self.name}:5000"


PLAIN_REGISTRY = RegistryContainer("ivc-registry", 5001, tls=False)
AUTH_REGISTRY = RegistryContainer("ivc-auth-registry", 5002, tls=True)  # TLS + htpasswd, for pull secrets
REGISTRY_CONTAINERS = (PLAIN_REGISTRY, AUTH_REGISTRY)
KIND_NETWORK = "kind"


def validate_cluster_name(name: str) -> str:
    if not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name):
        raise ClusterError(f"kind cluster name {name!r} must be lowercase letters, digits and '-'")
    return name


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
    nodes: int = 2,
    feature_gates: Mapping[str, bool] | None = None,
    admission_plugins: Sequence[str] = (),
    cri_socket: str = CRIO_SOCKET,
) -> str:
    """The kind cluster config: one control-plane node and `nodes - 1` workers, all on CRI-O.

    Everything node-specific is a cluster-level patch, so every worker joins with the same settings:
    kind's kubeadm template hard-codes containerd's socket; kubeadm's SystemVerification preflight and
    (from 1.35) the kubelet refuse cgroup v1 hosts unless told otherwise.
    """
    if nodes < 1:
        raise ClusterError(f"--nodes {nodes}: a kind cluster needs at least its control-plane node")
    config: dict[str, object] = {"kind": "Cluster", "apiVersion": "kind.x-k8s.io/v1alpha4"}
    cluster_gates = gates.gates_for(k8s_version, feature_gates)
    if cluster_gates:
        config["featureGates"] = cluster_gates
    registration = {"criSocket": cri_socket, "ignorePreflightErrors": ["SystemVerification"]}
    patches = [
        _patch({"kind": "InitConfiguration", "nodeRegistration": registration}),
        _patch({"kind": "JoinConfiguration", "nodeRegistration": registration}),
        # 1.35 made cgroup v1 hosts fatal for the kubelet; false is harmless on cgroup v2 hosts.
        _patch({"kind": "KubeletConfiguration", "failCgroupV1": False}),
    ]
    if admission_plugins:
        plugins = ",".join(dict.fromkeys(["NodeRestriction", *admission_plugins]))  # keep kubeadm's default
        if Version.parse(k8s_version) >= KUBEADM_V1BETA4:
            # v1beta4's extraArgs is a list (name/value): append, or kind's own entries would be replaced.
            op = {
                "op": "add",
                "path": "/apiServer/extraArgs/-",
                "value": {"name": "enable-admission-plugins", "value": plugins},
            }
            config["kubeadmConfigPatchesJSON6902"] = [
                {
                    "group": "kubeadm.k8s.io",
                    "version": "v1beta4",
                    "kind": "ClusterConfiguration",
                    "patch": yaml.safe_dump([op], sort_keys=False),
                }
            ]
        else:
            patches.append(
                _patch(
                    {"kind": "ClusterConfiguration", "apiServer": {"extraArgs": {"enable-admission-plugins": plugins}}}
                )
            )
    config["kubeadmConfigPatches"] = patches
    config["nodes"] = [{"role": "control-plane"}] + [{"role": "worker"}] * (nodes - 1)
    header = (
        f"# kind cluster on CRI-O for Kubernetes {k8s_version}, {nodes} node(s), rendered by "
        "conformance.cluster.kind.config.render_kind_config.\n"
    )
    return header + yaml.dump(config, Dumper=_LiteralDumper, sort_keys=False, default_flow_style=False)


def containerd_hosts_toml(registry: RegistryContainer) -> str:
    """The same redirect for stock containerd nodes (kind's documented pattern)."""
    return f'[host."http://{registry.in_network}"]\n'


def local_registry_hosting() -> str:
    """KEP-1755 `localRegistryHosting.v1` document, so tools can discover the (plain) registry."""
    return (
        f'host: "{PLAIN_REGISTRY.host}"\n'
        f'hostFromClusterNetwork: "{PLAIN_REGISTRY.in_network}"\n'
        'help: "https://kind.sigs.k8s.io/docs/user/local-registry/"\n'
    )


def parse_tool_version(text: str) -> tuple[int, int, int] | None:
    match = re.search(r"v?(\d+)\.(\d+)\.(\d+)", text)
    return (int(match[1]), int(match[2]), int(match[3])) if match else None
