"""The local cluster's own API steps: RBAC a full `kubeadm init` would create, node readiness, a smoke Pod."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path

from conformance.cluster.local import render
from conformance.infra.errors import ClusterError
from conformance.infra.kube import ApiException, Kube, is_running, is_transient, node_is_ready
from conformance.infra.wait import NotYet, WaitTimeout

# Bindings a full `kubeadm init` would create but the phases don't.
RBAC = {
    # admin.conf's identity (and the apiserver's kubelet client cert) are in this group.
    "kubeadm:cluster-admins": ("cluster-admin", [("Group", "kubeadm:cluster-admins")]),
    # exec/logs/port-forward: the apiserver calls the kubelet as this user.
    "kube-apiserver-kubelet-admin": ("system:kubelet-api-admin", [("User", "kube-apiserver-kubelet-client")]),
}


def create_rbac(kubeconfig: Path) -> None:
    kube = Kube(str(kubeconfig))
    for name, (role, subjects) in RBAC.items():
        kube.ensure_cluster_role_binding(name, role, subjects)


def node_ready(kubeconfig: Path) -> None:
    """A probe: NotYet until the node is registered and Ready."""
    try:
        node = Kube(str(kubeconfig)).read_node(render.NODE_NAME)
    except ApiException as err:
        if is_transient(err):
            raise NotYet(f"node {render.NODE_NAME}: {err.status} {err.reason}") from None
        raise
    except Exception as err:
        if is_transient(err):
            raise NotYet(f"API unreachable: {err}") from None
        raise
    if node is None:
        raise NotYet(f"node {render.NODE_NAME} is not registered yet")
    if not node_is_ready(node):
        raise NotYet(f"node {render.NODE_NAME} is not Ready yet")


def smoke_pod(kubeconfig: Path, *, pause_image: str, timeout: float, gone: Callable[[], str | None]) -> None:
    """A throwaway Pod from the pause image must reach Running: proves sandbox, CNI, pull, SA token."""
    name = f"ivc-smoke-{secrets.token_hex(3)}"
    pod = {
        "metadata": {"name": name, "labels": {"ivc.local/smoke": "true"}},
        "spec": {
            "containers": [{"name": "pause", "image": pause_image, "imagePullPolicy": "IfNotPresent"}],
            "terminationGracePeriodSeconds": 0,
        },
    }
    kube = Kube(str(kubeconfig))
    kube.create_pod("default", pod)
    try:
        kube.wait_for_pod(
            "default",
            name,
            is_running,
            what=f"smoke Pod {name} (image {pause_image}) to run",
            timeout=timeout,
            gone=gone,
        )
        kube.delete_pod("default", name)
        kube.wait_for_pod_gone("default", name, timeout=60, gone=gone)
    except WaitTimeout as error:
        kube.delete_pod("default", name)
        raise ClusterError(str(error).replace("\n", ": ")) from None


def versions(kubeconfig: Path) -> tuple[str, str]:
    """(server gitVersion, the node's containerRuntimeVersion)."""
    kube = Kube(str(kubeconfig))
    node = kube.read_node(render.NODE_NAME) or {}
    return kube.server_version(), node.get("status", {}).get("nodeInfo", {}).get("containerRuntimeVersion", "?")
