"""The suite's only contact with the Kubernetes API: create, wait, exec, events, metrics.

Wraps the official client so tests never meet its quirks: objects are plain dicts (raw JSON,
so no field is lost to an old model), waits are watches with deadlines that say what they saw,
transient API errors are retried with tenacity, and every exec gets its own ApiClient
(kubernetes-client/python#928: a shared client breaks under concurrent websocket streams).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.stream import stream

from conformance.cluster import api
from conformance.cluster.api import Json, WaitTimeout, transient_retry

__all__ = [
    "ExecResult",
    "Json",
    "Kube",
    "WaitTimeout",
    "container_status",
    "container_statuses",
    "describe_state",
    "is_running",
    "transient_retry",
    "waiting_reason",
]


@dataclass(frozen=True)
class ExecResult:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


class Kube:
    """One per process (xdist worker). Holds the kubeconfig, not a shared exec client."""

    def __init__(self, kubeconfig: str, context: str | None = None) -> None:
        self.kubeconfig = kubeconfig
        self.context = context
        self.api_client = self.new_api_client()
        self.core = client.CoreV1Api(self.api_client)

    def new_api_client(self) -> client.ApiClient:
        return api.new_client(self.kubeconfig, self.context)

    # -- reads: typed API calls with _preload_content=False give raw JSON on every client >= 31 ----
    @transient_retry
    def server_version(self) -> str:
        return api.raw(client.VersionApi(self.api_client).get_code(_preload_content=False))["gitVersion"]

    @transient_retry
    def read_pod(self, namespace: str, name: str) -> Json:
        return api.raw(self.core.read_namespaced_pod(name, namespace, _preload_content=False))

    @transient_retry
    def list_pods(self, namespace: str) -> list[Json]:
        return api.raw(self.core.list_namespaced_pod(namespace, _preload_content=False))["items"]

    @transient_retry
    def pods_on_node(self, node: str) -> list[Json]:
        """Every Pod the scheduler put on `node`, in all namespaces."""
        response = self.core.list_pod_for_all_namespaces(field_selector=f"spec.nodeName={node}", _preload_content=False)
        return api.raw(response)["items"]

    @transient_retry
    def nodes(self) -> list[Json]:
        return api.raw(self.core.list_node(_preload_content=False))["items"]

    @transient_retry
    def node_metrics(self, node: str) -> str:
        """The kubelet's /metrics through the apiserver's node proxy."""
        response = self.core.connect_get_node_proxy_with_path(node, "metrics", _preload_content=False)
        return response.data.decode()

    # -- writes ---------------------------------------------------------------------------------
    @transient_retry
    def create_pod(self, namespace: str, body: Json, dry_run: bool = False) -> Json:
        kwargs = {"dry_run": "All"} if dry_run else {}
        response = self.core.create_namespaced_pod(namespace, body, _preload_content=False, **kwargs)
        return api.raw(response)

    @transient_retry
    def delete_pod(self, namespace: str, name: str, grace_seconds: int = 0) -> None:
        try:
            self.core.delete_namespaced_pod(name, namespace, grace_period_seconds=grace_seconds)
        except ApiException as error:
            if error.status != 404:
                raise

    @transient_retry
    def create_namespace(self, name: str, labels: dict[str, str], annotations: dict[str, str]) -> None:
        body = {"metadata": {"name": name, "labels": labels, "annotations": annotations}}
        self.core.create_namespace(body)

    @transient_retry
    def delete_namespace(self, name: str) -> None:
        """Non-blocking: the namespace controller finishes the job while the run goes on."""
        try:
            self.core.delete_namespace(name, propagation_policy="Background", grace_period_seconds=0)
        except ApiException as error:
            if error.status != 404:
                raise

    @transient_retry
    def create(self, namespace: str, kind: str, body: Json, dry_run: bool = False) -> Json:
        """Create a namespaced object (server-side dry run on request); returns it as the apiserver stored it."""
        creators: dict[str, Callable[..., Any]] = {
            "Secret": self.core.create_namespaced_secret,
            "ServiceAccount": self.core.create_namespaced_service_account,
            "Deployment": client.AppsV1Api(self.api_client).create_namespaced_deployment,
        }
        kwargs = {"dry_run": "All"} if dry_run else {}
        response = creators[kind](namespace, body, _preload_content=False, **kwargs)
        return api.raw(response)

    @transient_retry
    def list_namespaces(self, selector: str) -> list[Json]:
        return api.raw(self.core.list_namespace(label_selector=selector, _preload_content=False))["items"]

    def ensure_namespace(self, name: str, labels: dict[str, str], annotations: dict[str, str]) -> None:
        """Create the namespace unless it exists (another process made it first), then wait for its
        default ServiceAccount."""
        api.ignoring(409, self.create_namespace, name, labels=labels, annotations=annotations)
        self.wait_for_service_account(name)

    # -- leases (coordination.k8s.io): a run's proof of life ------------------------------------
    @transient_retry
    def create_lease(self, namespace: str, name: str, holder: str, seconds: int, now: str) -> None:
        body = {
            "metadata": {"name": name},
            "spec": {"holderIdentity": holder, "leaseDurationSeconds": seconds, "acquireTime": now, "renewTime": now},
        }
        client.CoordinationV1Api(self.api_client).create_namespaced_lease(namespace, body)

    @transient_retry
    def renew_lease(self, namespace: str, name: str, now: str) -> None:
        client.CoordinationV1Api(self.api_client).patch_namespaced_lease(name, namespace, {"spec": {"renewTime": now}})

    @transient_retry
    def read_lease(self, namespace: str, name: str) -> Json | None:
        try:
            response = client.CoordinationV1Api(self.api_client).read_namespaced_lease(
                name, namespace, _preload_content=False
            )
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        return api.raw(response)

    # -- waits: one watch primitive (api.watch_until), each ending as soon as the outcome is decided --
    def wait_for_service_account(self, namespace: str, name: str = "default", timeout: float = 60) -> None:
        """Pods cannot be created before the namespace's ServiceAccount exists (e2e framework rule)."""
        api.wait_for_service_account(self.core, namespace, name, timeout=timeout)

    def wait_for_pod(
        self, namespace: str, name: str, condition: Callable[[Json], bool], *, what: str, timeout: float
    ) -> Json:
        """Watch the Pod until `condition(pod)` holds; on timeout describe what was seen."""
        seen: dict[str, Json] = {}

        def satisfied(pods: Mapping[str, Json]) -> Json | None:
            pod = pods.get(name)
            if pod is None:
                if seen:
                    raise WaitTimeout(f"Pod {namespace}/{name} was deleted while waiting for {what}")
                return None
            seen["last"] = pod
            return pod if condition(pod) else None

        return api.watch_until(
            self.core.list_namespaced_pod,
            namespace,
            field_selector=f"metadata.name={name}",
            satisfied=satisfied,
            what=what,
            timeout=timeout,
            describe=lambda pods: self.describe_pod(pods[name]) if name in pods else "no such Pod",
        )

    def wait_for_pod_gone(self, namespace: str, name: str, *, timeout: float) -> None:
        """Watch until the Pod object no longer exists; on timeout describe what was seen."""
        api.watch_until(
            self.core.list_namespaced_pod,
            namespace,
            field_selector=f"metadata.name={name}",
            satisfied=lambda pods: True if name not in pods else None,
            what=f"Pod {name} to be gone",
            timeout=timeout,
            describe=lambda pods: self.describe_pod(pods[name]) if name in pods else "",
        )

    def wait_for_event(
        self, namespace: str, involved: str, condition: Callable[[Json], bool], *, what: str, timeout: float
    ) -> Json:
        """The first event about `involved` for which `condition(event)` holds, listed or watched for.

        The kubelet records events asynchronously, so one can land after the Pod state that follows it.
        """

        def satisfied(events: Mapping[str, Json]) -> Json | None:
            return next((event for event in events.values() if condition(event)), None)

        def describe(events: Mapping[str, Json]) -> str:
            return "events seen:\n" + (
                "\n".join(
                    f"  event {e.get('type')} {e.get('reason')}: {e.get('message', '')}"
                    for e in list(events.values())[-15:]
                )
                or "  none"
            )

        return api.watch_until(
            self.core.list_namespaced_event,
            namespace,
            field_selector=f"involvedObject.name={involved}",
            satisfied=satisfied,
            what=what,
            timeout=timeout,
            describe=describe,
        )

    # -- exec -----------------------------------------------------------------------------------
    def exec(
        self, namespace: str, pod: str, command: list[str], container: str | None = None, timeout: float = 60
    ) -> ExecResult:
        @transient_retry
        def run() -> ExecResult:
            api = client.CoreV1Api(self.new_api_client())
            kwargs = {"container": container} if container else {}
            ws = stream(
                api.connect_get_namespaced_pod_exec,
                pod,
                namespace,
                command=command,
                stderr=True,
                stdin=False,
                stdout=True,
                tty=False,
                _preload_content=False,
                **kwargs,
            )
            try:
                ws.run_forever(timeout=timeout)
                if ws.is_open():
                    raise WaitTimeout(f"exec {command} in {namespace}/{pod} did not finish within {timeout:.0f}s")
                returncode = ws.returncode
                return ExecResult(returncode if returncode is not None else -1, ws.read_stdout(), ws.read_stderr())
            finally:
                ws.close()
                api.api_client.close()

        return run()

    # -- observation ----------------------------------------------------------------------------
    def events(self, namespace: str, involved: str | None = None) -> list[Json]:
        selector = {"field_selector": f"involvedObject.name={involved}"} if involved else {}
        items = api.raw(self.core.list_namespaced_event(namespace, _preload_content=False, **selector))["items"]
        return sorted(items, key=lambda e: e.get("firstTimestamp") or e.get("eventTime") or "")

    def pod_log(self, namespace: str, name: str, container: str, previous: bool = False) -> str:
        try:
            response = self.core.read_namespaced_pod_log(
                name, namespace, container=container, previous=previous, _preload_content=False
            )
            return response.data.decode(errors="replace")
        except ApiException as error:
            return f"<no log: {error.status} {error.reason}>"

    def describe_pod(self, pod: Json) -> str:
        """Phase, per-container state and the Pod's events: what a human needs to see."""
        meta, status = pod["metadata"], pod.get("status", {})
        lines = [
            f"Pod {meta['namespace']}/{meta['name']}: phase={status.get('phase')} "
            f"reason={status.get('reason', '')} message={status.get('message', '')}".rstrip()
        ]
        for cs in container_statuses(pod):
            last = cs.get("lastState", {})
            lines.append(
                f"  container {cs['name']}: {describe_state(cs.get('state', {}))} "
                f"restarts={cs.get('restartCount', 0)}" + (f" last={describe_state(last)}" if last else "")
            )
        for condition in status.get("conditions", []):
            if condition.get("status") != "True":
                lines.append(
                    f"  condition {condition['type']}=False {condition.get('reason', '')} "
                    f"{condition.get('message', '')}".rstrip()
                )
        try:
            events = self.events(meta["namespace"], meta["name"])
        except ApiException:
            events = []
        for event in events[-15:]:
            lines.append(
                f"  event {event.get('type')} {event.get('reason')}: {event.get('message', '')}"
                f" (x{event.get('count', 1)})"
            )
        return "\n".join(lines)


def describe_state(state: Json) -> str:
    for key, value in state.items():
        detail = value.get("reason") or ""
        message = value.get("message") or ""
        return f"{key}({detail}{': ' + message if message else ''})"
    return "unknown"


# -- predicates over raw Pods -----------------------------------------------------------------
STATUS_KINDS = ("initContainerStatuses", "containerStatuses", "ephemeralContainerStatuses")


def container_statuses(pod: Json) -> list[Json]:
    """Every container's status: init containers (sidecars among them), app containers, ephemeral ones."""
    status = pod.get("status", {})
    return [cs for kind in STATUS_KINDS for cs in status.get(kind, [])]


def container_status(pod: Json, container: str) -> Json | None:
    for cs in container_statuses(pod):
        if cs["name"] == container:
            return cs
    return None


def waiting_reason(pod: Json, container: str) -> str | None:
    cs = container_status(pod, container)
    if cs is None:
        return None
    return cs.get("state", {}).get("waiting", {}).get("reason")


def is_running(pod: Json) -> bool:
    status = pod.get("status", {})
    if status.get("phase") != "Running":
        return False
    return all(cs.get("ready") or cs.get("started") for cs in status.get("containerStatuses", []))
