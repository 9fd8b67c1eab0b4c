"""The registry container beside a kind cluster, wired into every node.

Pods reference `localhost:5001/...`; inside a node that is not the host, so each node's runtime is
told (registries.conf drop-in for CRI-O, hosts.toml for containerd) to dial the container on the
kind network instead. `kind load docker-image` is no substitute: it imports into containerd, which
CRI-O never reads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from conformance.cluster.errors import ClusterError
from conformance.cluster.host import last_line
from conformance.cluster.kind import config
from conformance.cluster.kind.marks import LABEL_CLUSTER, LABEL_MANAGED_BY, LABEL_OWNER, MANAGED_BY, owner
from conformance.cluster.kind.tools import Tools
from conformance.cluster.progress import progress

REGISTRY_IMAGE = "registry:2"


@dataclass(frozen=True)
class RegistryState:
    running: bool
    labels: dict[str, str]
    networks: dict[str, object]


def state(tools: Tools) -> RegistryState | None:
    proc = tools.docker_run(
        "inspect", "--type", "container", config.REGISTRY_NAME, what="inspect registry", check=False
    )
    if proc.returncode != 0:
        return None
    info = json.loads(proc.stdout)[0]
    return RegistryState(
        running=bool(info.get("State", {}).get("Running")),
        labels=info.get("Config", {}).get("Labels") or {},
        networks=info.get("NetworkSettings", {}).get("Networks") or {},
    )


def is_ours(tools: Tools, cluster_name: str) -> bool:
    found = state(tools)
    return (
        found is not None
        and found.labels.get(LABEL_MANAGED_BY) == MANAGED_BY
        and found.labels.get(LABEL_CLUSTER) == cluster_name
    )


def ensure(tools: Tools, cluster_name: str) -> bool:
    """Start the registry container if needed; True when this call created it."""
    found = state(tools)
    if found is not None and found.running:
        progress(f"kind: registry {config.REGISTRY_NAME} already running")
        return False
    if found is not None:
        tools.docker_run("start", config.REGISTRY_NAME, what=f"start registry {config.REGISTRY_NAME}")
        return False
    progress(f"kind: starting registry {config.REGISTRY_NAME} on 127.0.0.1:{config.REGISTRY_HOST_PORT}")
    proc = tools.docker_run(
        "run",
        "-d",
        "--restart=always",
        "-p",
        f"127.0.0.1:{config.REGISTRY_HOST_PORT}:5000",
        "--network",
        "bridge",
        "--name",
        config.REGISTRY_NAME,
        "--label",
        f"{LABEL_MANAGED_BY}={MANAGED_BY}",
        "--label",
        f"{LABEL_CLUSTER}={cluster_name}",
        "--label",
        f"{LABEL_OWNER}={owner()}",
        "-e",
        "REGISTRY_STORAGE_DELETE_ENABLED=true",
        REGISTRY_IMAGE,
        what=f"start registry {config.REGISTRY_NAME}",
        check=False,
    )
    if proc.returncode != 0:
        reason = last_line(proc.stderr)
        hint = (
            f"free 127.0.0.1:{config.REGISTRY_HOST_PORT} (see `docker ps --filter publish={config.REGISTRY_HOST_PORT}`)"
            if "allocated" in reason or "in use" in reason
            else f"check that docker can pull {REGISTRY_IMAGE}"
        )
        raise ClusterError(f"registry container {config.REGISTRY_NAME} did not start ({reason}): {hint}")
    return True


def connect(tools: Tools) -> None:
    found = state(tools)
    if found is not None and config.KIND_NETWORK not in found.networks:
        tools.docker_run(
            "network",
            "connect",
            config.KIND_NETWORK,
            config.REGISTRY_NAME,
            what=f"connect {config.REGISTRY_NAME} to the kind network",
        )


def node_runtime(tools: Tools, node: str) -> str:
    # The socket, not the image name, says which runtime the kubelet talks to (a reused cluster may be stock kind).
    proc = tools.node_exec(node, "test", "-S", "/var/run/crio/crio.sock", what="detect runtime", check=False)
    return "cri-o" if proc.returncode == 0 else "containerd"


def wire_node(tools: Tools, node: str) -> None:
    if node_runtime(tools, node) == "cri-o":
        drop_in = Path(config.REGISTRIES_DROP_IN)
        tools.node_exec(
            node,
            "sh",
            "-c",
            f"mkdir -p {drop_in.parent} && cat > {drop_in}",
            what=f"write {drop_in} in {node}",
            input=config.registries_drop_in(),
        )
        # crio.conf(5): SIGHUP reloads registries.conf; the unit's ExecReload sends it.
        tools.node_exec(node, "systemctl", "reload", "crio", what=f"reload CRI-O in {node}")
    else:
        directory = f"/etc/containerd/certs.d/{config.REGISTRY_HOST}"
        tools.node_exec(
            node,
            "sh",
            "-c",
            f"mkdir -p '{directory}' && cat > '{directory}/hosts.toml'",
            what=f"write containerd hosts.toml in {node}",
            input=config.containerd_hosts_toml(),
        )


def remove(tools: Tools) -> None:
    progress(f"kind: removing registry {config.REGISTRY_NAME}")
    tools.docker_run("rm", "-f", "-v", config.REGISTRY_NAME, what=f"remove {config.REGISTRY_NAME}", detached=True)
