"""Pure parts of the kind provider: names, the kind cluster config, registry wiring documents.

Unit-tested in tests/test_kind_config.py; nothing here runs a tool.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import yaml

from conformance.cluster import admission, gates
from conformance.infra.errors import ClusterError
from conformance.infra.versions import Version

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


class _LiteralDumper(yaml.SafeDumper):
    """Multi-line strings (the kubeadm patches) as `|` blocks, the way kind's docs write them."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_LiteralDumper.add_representer(str, _represent_str)


def _patch(document: dict[str, object]) -> str:
    # No apiVersion: kind then applies the patch to whatever kubeadm API version the node uses.
    return yaml.safe_dump(document, sort_keys=False)


@dataclass(frozen=True)
class KindNode:
    """One node of the cluster: its role, the CRI socket of its runtime, and its image when nodes differ."""

    role: str  # "control-plane" or "worker"
    cri_socket: str = CRIO_SOCKET
    image: str | None = None  # None: the image `kind create cluster --image` names for every node


def homogeneous(nodes: int, cri_socket: str = CRIO_SOCKET) -> list[KindNode]:
    """One control-plane node and `nodes - 1` workers on one runtime."""
    if nodes < 1:
        raise ClusterError(f"--nodes {nodes}: a kind cluster needs at least its control-plane node")
    return [KindNode("control-plane", cri_socket)] + [KindNode("worker", cri_socket)] * (nodes - 1)


def _apiserver_args(k8s_version: str, args: Mapping[str, str]) -> tuple[dict[str, object] | None, dict[str, str]]:
    """kube-apiserver flags as kind applies them: a JSON6902 append per flag for kubeadm v1beta4 (extraArgs is
    a name/value list there, and a merge would replace kind's own entries); before, extraArgs to merge."""
    if args and Version.parse(k8s_version) >= KUBEADM_V1BETA4:
        ops = [
            {"op": "add", "path": "/apiServer/extraArgs/-", "value": {"name": k, "value": v}} for k, v in args.items()
        ]
        patch: dict[str, object] = {"group": "kubeadm.k8s.io", "version": "v1beta4", "kind": "ClusterConfiguration",
                                    "patch": yaml.safe_dump(ops, sort_keys=False)}  # fmt: skip
        return patch, {}
    return None, dict(args)


def render_kind_config(
    k8s_version: str,
    *,
    nodes: int | Sequence[KindNode] = 2,
    feature_gates: Mapping[str, bool] | None = None,
    admission_plugins: Sequence[str] = (),
    admission_config: str | None = None,
) -> str:
    """The kind cluster config: a control-plane node and workers, each on its runtime's CRI socket.

    Where every node runs the same runtime, everything node-specific is a cluster-level patch, so every
    worker joins with the same settings; where they differ, each node's criSocket is a patch of its own.
    kind's kubeadm template hard-codes containerd's socket; kubeadm's SystemVerification preflight and
    (from 1.35) the kubelet refuse cgroup v1 hosts unless told otherwise. `admission_config` is a file on
    the Docker host holding an AdmissionConfiguration (admission.py), mounted into the control-plane node.
    """
    members = homogeneous(nodes) if isinstance(nodes, int) else list(nodes)
    if not members or members[0].role != "control-plane" or any(n.role != "worker" for n in members[1:]):
        raise ClusterError("a kind cluster here is one control-plane node, then workers")
    config: dict[str, object] = {"kind": "Cluster", "apiVersion": "kind.x-k8s.io/v1alpha4"}
    cluster_gates = gates.gates_for(k8s_version, feature_gates)
    if cluster_gates:
        config["featureGates"] = cluster_gates
    shared_socket = len({n.cri_socket for n in members}) == 1
    registration: dict[str, object] = {"ignorePreflightErrors": ["SystemVerification"]}
    if shared_socket:
        registration = {"criSocket": members[0].cri_socket, **registration}
    patches = [
        _patch({"kind": "InitConfiguration", "nodeRegistration": registration}),
        _patch({"kind": "JoinConfiguration", "nodeRegistration": registration}),
        # 1.35 made cgroup v1 hosts fatal for the kubelet; false is harmless on cgroup v2 hosts.
        _patch({"kind": "KubeletConfiguration", "failCgroupV1": False}),
    ]
    args: dict[str, str] = {}
    if admission_plugins:
        args["enable-admission-plugins"] = ",".join(dict.fromkeys(["NodeRestriction", *admission_plugins]))
    api_server: dict[str, object] = {}
    if admission_config:
        args["admission-control-config-file"] = admission.IN_NODE_PATH
        volume = {"name": "ivc-admission", "hostPath": admission.IN_NODE_PATH, "mountPath": admission.IN_NODE_PATH,
                  "readOnly": True, "pathType": "File"}  # fmt: skip
        api_server["extraVolumes"] = [volume]
    json_patch, merged_args = _apiserver_args(k8s_version, args)
    if json_patch:
        config["kubeadmConfigPatchesJSON6902"] = [json_patch]
    if merged_args:
        api_server["extraArgs"] = merged_args
    if api_server:
        patches.append(_patch({"kind": "ClusterConfiguration", "apiServer": api_server}))
    config["kubeadmConfigPatches"] = patches
    rendered_nodes = []
    for node in members:
        entry: dict[str, object] = {"role": node.role}
        if node.image:
            entry["image"] = node.image
        if not shared_socket:
            kind = "InitConfiguration" if node.role == "control-plane" else "JoinConfiguration"
            entry["kubeadmConfigPatches"] = [_patch({"kind": kind, "nodeRegistration": {"criSocket": node.cri_socket}})]
        if admission_config and node.role == "control-plane":
            entry["extraMounts"] = [
                {"hostPath": admission_config, "containerPath": admission.IN_NODE_PATH, "readOnly": True}
            ]
        rendered_nodes.append(entry)
    config["nodes"] = rendered_nodes
    runtimes = "CRI-O" if shared_socket and members[0].cri_socket == CRIO_SOCKET else "nodes' own runtimes"
    header = (
        f"# kind cluster on {runtimes} for Kubernetes {k8s_version}, {len(members)} node(s), rendered by "
        "conformance.cluster.kind.cluster_config.render_kind_config.\n"
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
