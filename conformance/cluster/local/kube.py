"""The local cluster's own API calls: RBAC a full `kubeadm init` would create, node readiness, smoke Pod."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from pathlib import Path

from kubernetes import client

from conformance.cluster import api
from conformance.cluster.api import Json
from conformance.cluster.errors import ClusterError
from conformance.cluster.local import config
from conformance.cluster.wait import NotYet


def create_rbac(kubeconfig: Path) -> None:
    """Bindings a full `kubeadm init` would create but the phases don't."""
    bindings = {
        # admin.conf's identity (and the apiserver's kubelet client cert) are in this group.
        "kubeadm:cluster-admins": ("cluster-admin", [("Group", "kubeadm:cluster-admins")]),
        # exec/logs/port-forward: the apiserver calls the kubelet as this user.
        "kube-apiserver-kubelet-admin": ("system:kubelet-api-admin", [("User", "kube-apiserver-kubelet-client")]),
    }
    with api.new_client(str(kubeconfig)) as connection:
        rbac = client.RbacAuthorizationV1Api(connection)
        for name, (role, subjects) in bindings.items():
            body = client.V1ClusterRoleBinding(
                metadata=client.V1ObjectMeta(name=name, labels={"ivc.local/created-by": "ivc"}),
                role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="ClusterRole", name=role),
                subjects=[
                    client.RbacV1Subject(kind=kind, name=subject, api_group="rbac.authorization.k8s.io")
                    for kind, subject in subjects
                ],
            )
            api.ignoring(409, api.transient_retry(rbac.create_cluster_role_binding), body)


def node_ready(kubeconfig: Path) -> None:
    """A probe: NotYet until the node is registered and Ready."""
    with api.new_client(str(kubeconfig)) as connection:
        try:
            node = api.raw(client.CoreV1Api(connection).read_node(config.NODE_NAME, _preload_content=False))
        except client.ApiException as err:
            if err.status == 404 or api.is_transient(err):
                raise NotYet(f"node {config.NODE_NAME}: {err.status} {err.reason}") from None
            raise
        except Exception as err:
            if api.is_transient(err):
                raise NotYet(f"API unreachable: {err}") from None
            raise
    if not api.node_is_ready(node):
        raise NotYet(f"node {config.NODE_NAME} is not Ready yet")


def smoke_pod(kubeconfig: Path, *, pause_image: str, timeout: float, gone: Callable[[], str | None]) -> None:
    """A throwaway Pod from the pause image must reach Running: proves sandbox, CNI, pull, SA token."""
    name = f"ivc-smoke-{secrets.token_hex(3)}"
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name=name, labels={"ivc.local/smoke": "true"}),
        spec=client.V1PodSpec(
            containers=[client.V1Container(name="pause", image=pause_image, image_pull_policy="IfNotPresent")],
            termination_grace_period_seconds=0,
        ),
    )

    def running(pods: Mapping[str, Json]) -> bool | None:
        return True if pods.get(name, {}).get("status", {}).get("phase") == "Running" else None

    def seen(pods: Mapping[str, Json]) -> str:
        statuses = pods.get(name, {}).get("status", {})
        waiting = [
            f"{s['state']['waiting'].get('reason')}: {s['state']['waiting'].get('message', '')}"
            for s in statuses.get("containerStatuses", [])
            if "waiting" in s.get("state", {})
        ]
        return f"phase {statuses.get('phase')} {waiting}"

    with api.new_client(str(kubeconfig)) as connection:
        core = client.CoreV1Api(connection)
        api.transient_retry(core.create_namespaced_pod)("default", pod)
        try:
            api.watch_until(
                core.list_namespaced_pod,
                "default",
                field_selector=f"metadata.name={name}",
                satisfied=running,
                describe=seen,
                what=f"smoke Pod {name} (image {pause_image}) to run",
                timeout=timeout,
                gone=gone,
            )
            api.ignoring(404, core.delete_namespaced_pod, name, "default", grace_period_seconds=0)
            api.watch_until(
                core.list_namespaced_pod,
                "default",
                field_selector=f"metadata.name={name}",
                satisfied=lambda pods: True if name not in pods else None,
                what=f"smoke Pod {name} to be deleted",
                timeout=60,
                gone=gone,
            )
        except api.WaitTimeout as error:
            api.ignoring(404, core.delete_namespaced_pod, name, "default", grace_period_seconds=0)
            raise ClusterError(str(error).replace("\n", ": ")) from None


def versions(kubeconfig: Path) -> tuple[str, str]:
    """(server gitVersion, the node's containerRuntimeVersion)."""
    with api.new_client(str(kubeconfig)) as connection:
        server = api.raw(client.VersionApi(connection).get_code(_preload_content=False))["gitVersion"]
        node = api.raw(client.CoreV1Api(connection).read_node(config.NODE_NAME, _preload_content=False))
    return server, node["status"]["nodeInfo"]["containerRuntimeVersion"]
