"""Talking to the fresh cluster: health endpoints, RBAC bindings, node/ServiceAccount readiness, smoke Pod.

Uses the official `kubernetes` Python client (imported lazily so that build.py and the pure
config module don't need it).
"""

from __future__ import annotations

import secrets
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from conformance.cluster.local import config
from conformance.cluster.local.processes import ProcessRecord, not_yet, wait_for


def http_get(url: str, *, cafile: str | Path | None = None, verify: bool = True, timeout: float = 5) -> tuple[int, str]:
    """(status, body) of a GET; HTTP error statuses are returned, connection errors raise OSError."""
    context = None
    if url.startswith("https://"):
        context = ssl.create_default_context(cafile=str(cafile) if cafile else None)
        if not verify:  # loopback health endpoints with self-signed serving certs
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as resp:
            return resp.status, resp.read().decode(errors="replace")
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(errors="replace")


def expect_status(url: str, statuses: tuple[int, ...] = (200,), **kwargs: Any) -> None:
    status, body = http_get(url, **kwargs)
    if status not in statuses:
        raise not_yet(f"{url} answered {status}: {body.strip()[:200]}")


def api_client(kubeconfig: Path) -> Any:
    from kubernetes import config as kconfig

    return kconfig.new_client_from_config(config_file=str(kubeconfig))


def _ignoring(status: int, call: Any, *args: Any, **kwargs: Any) -> None:
    """Call the API, treating one HTTP status as success (409: already there, 404: already gone)."""
    from kubernetes.client.exceptions import ApiException

    try:
        call(*args, **kwargs)
    except ApiException as err:
        if err.status != status:
            raise


def create_rbac(kubeconfig: Path) -> None:
    """Bindings a full `kubeadm init` would create but the phases don't."""
    from kubernetes import client

    rbac = client.RbacAuthorizationV1Api(api_client(kubeconfig))
    bindings = {
        # admin.conf's identity (and the apiserver's kubelet client cert) are in this group.
        "kubeadm:cluster-admins": ("cluster-admin", [("Group", "kubeadm:cluster-admins")]),
        # exec/logs/port-forward: the apiserver calls the kubelet as this user.
        "kube-apiserver-kubelet-admin": ("system:kubelet-api-admin", [("User", "kube-apiserver-kubelet-client")]),
    }
    for name, (role, subjects) in bindings.items():
        body = client.V1ClusterRoleBinding(
            metadata=client.V1ObjectMeta(name=name, labels={"ivc.local/created-by": "ivc"}),
            role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="ClusterRole", name=role),
            subjects=[
                client.RbacV1Subject(kind=kind, name=subject, api_group="rbac.authorization.k8s.io")
                for kind, subject in subjects
            ],
        )
        _ignoring(409, rbac.create_cluster_role_binding, body)


def node_ready(kubeconfig: Path) -> bool:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    try:
        node = client.CoreV1Api(api_client(kubeconfig)).read_node(config.NODE_NAME)
    except ApiException as err:
        if err.status == 404:
            return False
        raise
    return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])


def wait_node_ready(kubeconfig: Path, *, kubelet: ProcessRecord, timeout: float) -> None:
    def probe() -> None:
        if not node_ready(kubeconfig):
            raise not_yet(f"node {config.NODE_NAME} is not Ready yet")

    wait_for(f"node {config.NODE_NAME} to be Ready", _api_retrying(probe), timeout=timeout, record=kubelet)


def wait_default_service_account(kubeconfig: Path, *, controller_manager: ProcessRecord, timeout: float) -> None:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    core = client.CoreV1Api(api_client(kubeconfig))

    def probe() -> None:
        try:
            core.read_namespaced_service_account("default", "default")
        except ApiException as err:
            if err.status == 404:
                raise not_yet("ServiceAccount default/default does not exist yet") from None
            raise

    wait_for(
        "the default ServiceAccount in namespace default",
        _api_retrying(probe),
        timeout=timeout,
        record=controller_manager,
    )


def smoke_pod(kubeconfig: Path, *, pause_image: str, kubelet: ProcessRecord, timeout: float) -> None:
    """A throwaway Pod from the pause image must reach Running: proves sandbox, CNI, pull, SA token."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    core = client.CoreV1Api(api_client(kubeconfig))
    name = f"ivc-smoke-{secrets.token_hex(3)}"
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name=name, labels={"ivc.local/smoke": "true"}),
        spec=client.V1PodSpec(
            containers=[client.V1Container(name="pause", image=pause_image, image_pull_policy="IfNotPresent")],
            termination_grace_period_seconds=0,
        ),
    )
    core.create_namespaced_pod("default", pod)

    def running() -> None:
        current = core.read_namespaced_pod(name, "default")
        if current.status.phase != "Running":
            waiting = [
                f"{s.state.waiting.reason}: {s.state.waiting.message or ''}".strip()
                for s in current.status.container_statuses or []
                if s.state and s.state.waiting
            ]
            raise not_yet(f"smoke pod {name} is {current.status.phase} {waiting or ''}".strip())

    def gone() -> None:
        try:
            core.read_namespaced_pod(name, "default")
        except ApiException as err:
            if err.status == 404:
                return
            raise
        raise not_yet(f"smoke pod {name} still exists")

    try:
        wait_for(
            f"smoke pod {name} (image {pause_image}) to run", _api_retrying(running), timeout=timeout, record=kubelet
        )
    finally:
        _ignoring(404, core.delete_namespaced_pod, name, "default", grace_period_seconds=0)
    wait_for(f"smoke pod {name} to be deleted", _api_retrying(gone), timeout=60, record=kubelet)


def _api_retrying(probe: Any) -> Any:
    """Transient API failures (5xx, connection resets) count as 'not yet', not as fatal."""

    def wrapped() -> Any:
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError as Urllib3Error

        try:
            return probe()
        except ApiException as err:
            if err.status >= 500 or err.status in (0, 429):
                raise not_yet(f"API error {err.status}: {err.reason}") from None
            raise
        except Urllib3Error as err:
            raise not_yet(f"API unreachable: {err}") from None

    return wrapped


def server_version(kubeconfig: Path) -> str:
    from kubernetes import client

    return client.VersionApi(api_client(kubeconfig)).get_code().git_version


def runtime_version(kubeconfig: Path) -> str:
    from kubernetes import client

    info = client.CoreV1Api(api_client(kubeconfig)).read_node(config.NODE_NAME).status.node_info
    return info.container_runtime_version  # e.g. cri-o://1.36.3
