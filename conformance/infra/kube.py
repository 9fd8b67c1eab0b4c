"""The one way to the Kubernetes API: client construction, transient retry, watches, and `Kube`.

One client constructor (an explicit kubeconfig and context, never the process-global default), one
definition of a transient API error and its bounded retry, one call that tolerates a single status
(409 on create, 404 on delete), and one wait for API objects: `watch_until`, which lists, then
watches from the list's resourceVersion, re-lists on 410 Gone or a dropped stream, and ends the
moment its condition is decided. `Kube` is what every caller holds: providers (readiness, RBAC,
ConfigMaps), the framework (Pods, events, exec, leases) and the benchmark. Objects are plain dicts
(raw JSON, so no field is lost to an old model); every exec gets its own ApiClient
(kubernetes-client/python#928: a shared client breaks under concurrent websocket streams).
The predicates over raw Pods (container statuses of every kind, running, waiting reason) live here too.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException
from kubernetes.stream import stream
from tenacity import retry, retry_if_exception, stop_after_delay, wait_exponential
from urllib3.exceptions import HTTPError

from conformance.infra.errors import ClusterError
from conformance.infra.wait import NotYet, WaitTimeout, wait_for

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

__all__ = [
    "ApiException",
    "ExecResult",
    "Json",
    "Kube",
    "WaitTimeout",
    "container_status",
    "container_statuses",
    "describe_state",
    "ignoring",
    "is_running",
    "is_transient",
    "new_client",
    "node_is_ready",
    "raw",
    "transient_retry",
    "waiting_reason",
    "watch_until",
]

Json = dict[str, Any]
T = TypeVar("T")
TRANSIENT_STATUS = frozenset({0, 429, 500, 502, 503, 504})
# Without a callback, a watch window is this long; a `gone` check runs between windows.
WATCH_WINDOW = 30.0
GONE_CHECK_WINDOW = 3.0


def new_client(kubeconfig: str, context: str | None = None, *, retries: int | None = None) -> ApiClient:
    """A client for exactly this kubeconfig and context (kubetest#133: never the global default)."""
    configuration = client.Configuration()
    if retries is not None:
        configuration.retries = retries
    return config.new_client_from_config(
        config_file=kubeconfig, context=context, persist_config=False, client_configuration=configuration
    )


def is_transient(error: BaseException) -> bool:
    """A flapping apiserver (restarting, overloaded, connection reset) rather than a real answer."""
    if isinstance(error, ApiException):
        return error.status in TRANSIENT_STATUS
    return isinstance(error, (HTTPError, ConnectionError, TimeoutError))


# Bounded: a flapping apiserver gets 30 s, then the real error surfaces.
transient_retry = retry(
    retry=retry_if_exception(is_transient),
    stop=stop_after_delay(30),
    wait=wait_exponential(multiplier=0.2, max=3),
    reraise=True,
)


def ignoring(status: int, call: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
    """Call the API, treating one HTTP status as success (409: already there, 404: already gone)."""
    try:
        return call(*args, **kwargs)
    except ApiException as err:
        if err.status != status:
            raise
        return None


def raw(response: Any) -> Json:
    """The JSON body of a `_preload_content=False` call: every field, whatever the client's models know."""
    return json.loads(response.data)


def watch_until(
    list_call: Callable[..., Any],
    *args: Any,
    satisfied: Callable[[Mapping[str, Json]], T | None],
    what: str,
    timeout: float,
    field_selector: str | None = None,
    describe: Callable[[Mapping[str, Json]], str] | None = None,
    gone: Callable[[], str | None] | None = None,
) -> T:
    """Watch the objects `list_call(*args)` lists until `satisfied(objects by name)` returns a result.

    `satisfied` sees the current set after the list and after every event, and may raise to end
    the wait with a failure (a Pod deleted while awaited). `gone` is checked between watch windows
    (every few seconds when given): a reason string ends the wait at once, as a ClusterError.
    """
    deadline = time.monotonic() + timeout
    selector = {"field_selector": field_selector} if field_selector else {}
    objects: dict[str, Json] = {}
    while True:
        listed = transient_retry(list_call)(*args, _preload_content=False, **selector)
        body = raw(listed)
        objects = {item["metadata"]["name"]: item for item in body.get("items", [])}
        result = satisfied(objects)
        if result is not None:
            return result
        if gone is not None and (reason := gone()):
            raise ClusterError(f"{reason} while waiting for {what}")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            seen = describe(objects) if describe else ""
            raise WaitTimeout(f"timed out after {timeout:.0f}s waiting for {what}" + (f"\n{seen}" if seen else ""))
        window = min(remaining, GONE_CHECK_WINDOW if gone is not None else WATCH_WINDOW)
        try:
            for event in watch.Watch().stream(
                list_call,
                *args,
                resource_version=body["metadata"].get("resourceVersion"),
                timeout_seconds=max(1, int(window)),
                _request_timeout=window + 5,
                **selector,
            ):
                if event["type"] == "ERROR":  # 410 Gone inside the stream: re-list
                    break
                item = event["raw_object"]
                name = item["metadata"]["name"]
                if event["type"] == "DELETED":
                    objects.pop(name, None)
                else:
                    objects[name] = item
                result = satisfied(objects)
                if result is not None:
                    return result
                if time.monotonic() >= deadline:
                    break
        except Exception as error:
            if not (is_transient(error) or getattr(error, "status", None) == 410):
                raise


# Set by the node lifecycle controller until it has seen the node Ready: nothing schedules there before.
NOT_READY_TAINTS = frozenset({"node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"})


def node_is_ready(node: Json) -> bool:
    """Ready, and no longer tainted not-ready (a kind worker is Ready a moment before the taint goes)."""
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in node.get("status", {}).get("conditions", [])
    )
    return ready and not any(t.get("key") in NOT_READY_TAINTS for t in node.get("spec", {}).get("taints") or [])


@dataclass(frozen=True)
class ExecResult:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


class Kube:
    """One per process (xdist worker). Holds the kubeconfig, not a shared exec client.

    `retries=0` makes each call a single attempt (a probe whose own timeout is the bound)."""

    def __init__(self, kubeconfig: str, context: str | None = None, *, retries: int | None = None) -> None:
        self.kubeconfig = kubeconfig
        self.context = context
        self.retries = retries
        self.api_client = self.new_api_client()
        self.core = client.CoreV1Api(self.api_client)

    def new_api_client(self) -> client.ApiClient:
        return new_client(self.kubeconfig, self.context, retries=self.retries)

    def close(self) -> None:
        self.api_client.close()

    @property
    def server(self) -> str:
        """The apiserver's URL, as the kubeconfig names it."""
        return str(self.api_client.configuration.host)

    def answering_version(self, timeout: tuple[float, float]) -> str:
        """gitVersion from one bounded `/version` call, no retry: proves the server answers and accepts the
        credentials. Raises what the call raised."""
        return str(client.VersionApi(self.api_client).get_code(_request_timeout=timeout).git_version)

    # -- what providers need of a cluster they bring up -----------------------------------------
    def wait_nodes_ready(
        self, count: int, *, timeout: float, gone: Callable[[], str | None] | None = None
    ) -> list[str]:
        """Wait until at least `count` nodes are Ready (and untainted not-ready); returns their names."""

        def ready(nodes: Mapping[str, Json]) -> list[str] | None:
            names = sorted(name for name, node in nodes.items() if node_is_ready(node))
            return names if len(names) >= count else None

        def seen(nodes: Mapping[str, Json]) -> str:
            return ", ".join(f"{n} ready={node_is_ready(node)}" for n, node in sorted(nodes.items())) or "no nodes"

        return watch_until(
            self.core.list_node, satisfied=ready, what=f"{count} Ready node(s)", timeout=timeout, describe=seen,
            gone=gone,
        )  # fmt: skip

    @transient_retry
    def read_node(self, name: str) -> Json | None:
        try:
            return raw(self.core.read_node(name, _preload_content=False))
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def apply_config_map(self, namespace: str, name: str, data: Mapping[str, str]) -> None:
        """Create or replace a ConfigMap (kind's local-registry-hosting document)."""
        body = {"metadata": {"name": name, "namespace": namespace}, "data": dict(data)}
        try:
            if ignoring(409, transient_retry(self.core.create_namespaced_config_map), namespace, body) is None:
                transient_retry(self.core.replace_namespaced_config_map)(name, namespace, body)
        except ApiException as exc:
            raise ClusterError(f"cannot write ConfigMap {namespace}/{name}: HTTP {exc.status} {exc.reason}") from exc

    def ensure_cluster_role_binding(self, name: str, role: str, subjects: list[tuple[str, str]]) -> None:
        """A ClusterRoleBinding of `role` to (kind, name) subjects, unless one of that name exists."""
        body = {
            "metadata": {"name": name, "labels": {"ivc.local/created-by": "ivc"}},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [{"kind": k, "name": n, "apiGroup": "rbac.authorization.k8s.io"} for k, n in subjects],
        }
        rbac = client.RbacAuthorizationV1Api(self.api_client)
        ignoring(409, transient_retry(rbac.create_cluster_role_binding), body)

    # -- reads: typed API calls with _preload_content=False give raw JSON on every client >= 31 ----
    @transient_retry
    def server_version(self) -> str:
        return raw(client.VersionApi(self.api_client).get_code(_preload_content=False))["gitVersion"]

    @transient_retry
    def read_pod(self, namespace: str, name: str) -> Json:
        return raw(self.core.read_namespaced_pod(name, namespace, _preload_content=False))

    @transient_retry
    def list_pods(self, namespace: str) -> list[Json]:
        return raw(self.core.list_namespaced_pod(namespace, _preload_content=False))["items"]

    @transient_retry
    def pods_on_node(self, node: str) -> list[Json]:
        """Every Pod the scheduler put on `node`, in all namespaces."""
        response = self.core.list_pod_for_all_namespaces(field_selector=f"spec.nodeName={node}", _preload_content=False)
        return raw(response)["items"]

    @transient_retry
    def nodes(self) -> list[Json]:
        return raw(self.core.list_node(_preload_content=False))["items"]

    @transient_retry
    def node_metrics(self, node: str) -> str:
        """The kubelet's /metrics through the apiserver's node proxy."""
        response = self.core.connect_get_node_proxy_with_path(node, "metrics", _preload_content=False)
        return response.data.decode()

    def wait_kubelet_serving(self, node: str, *, timeout: float) -> None:
        """Until the kubelet of `node` answers /healthz through the apiserver's node proxy and knows every Pod
        the API has running there. After a restart it answers /healthz before it has read its Pods back, and
        an exec meanwhile gets 404 'pod does not exist'."""

        def serving() -> None:
            try:
                answer = self.core.connect_get_node_proxy_with_path(node, "healthz", _preload_content=False)
                if answer.data.decode().strip() != "ok":
                    raise NotYet(f"the kubelet of {node} answers /healthz with {answer.data.decode()[:80]!r}")
                known = raw(self.core.connect_get_node_proxy_with_path(node, "pods", _preload_content=False))
            except (ApiException, HTTPError) as error:
                raise NotYet(f"the kubelet of {node} does not serve yet: {type(error).__name__}") from None
            listed = {(p["metadata"]["namespace"], p["metadata"]["name"]) for p in known.get("items") or []}
            running = {
                (p["metadata"]["namespace"], p["metadata"]["name"])
                for p in self.pods_on_node(node)
                if p.get("status", {}).get("phase") == "Running"
            }
            if unknown := sorted(running - listed):
                raise NotYet(f"the kubelet of {node} does not know {len(unknown)} running Pod(s) yet: {unknown[0]}, …")

        wait_for(f"the kubelet of {node} to serve", serving, timeout=timeout, interval=0.5)

    # -- writes ---------------------------------------------------------------------------------
    @transient_retry
    def create_pod(self, namespace: str, body: Json, dry_run: bool = False) -> Json:
        kwargs = {"dry_run": "All"} if dry_run else {}
        response = self.core.create_namespaced_pod(namespace, body, _preload_content=False, **kwargs)
        return raw(response)

    @transient_retry
    def patch_pod(self, namespace: str, name: str, body: Json) -> Json:
        """A strategic merge patch of the Pod; returns it as stored."""
        return raw(self.core.patch_namespaced_pod(name, namespace, body, _preload_content=False))

    @transient_retry
    def add_ephemeral_container(self, namespace: str, pod: str, container: Json) -> Json:
        """Add an ephemeral container to a running Pod (the pods/ephemeralcontainers subresource, as
        `kubectl debug` does); returns the Pod as stored."""
        body = {"spec": {"ephemeralContainers": [container]}}
        response = self.core.patch_namespaced_pod_ephemeralcontainers(pod, namespace, body, _preload_content=False)
        return raw(response)

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
        return raw(response)

    @transient_retry
    def list_namespaces(self, selector: str) -> list[Json]:
        return raw(self.core.list_namespace(label_selector=selector, _preload_content=False))["items"]

    def ensure_namespace(self, name: str, labels: dict[str, str], annotations: dict[str, str]) -> None:
        """Create the namespace unless it exists (another process made it first), then wait for its
        default ServiceAccount."""
        ignoring(409, self.create_namespace, name, labels=labels, annotations=annotations)
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
        return raw(response)

    # -- waits: one watch primitive (api.watch_until), each ending as soon as the outcome is decided --
    def wait_for_service_account(
        self, namespace: str, name: str = "default", timeout: float = 60, gone: Callable[[], str | None] | None = None
    ) -> None:
        """Pods cannot be created before the namespace's ServiceAccount exists (e2e framework rule)."""
        watch_until(
            self.core.list_namespaced_service_account,
            namespace,
            field_selector=f"metadata.name={name}",
            satisfied=lambda accounts: True if name in accounts else None,
            what=f"ServiceAccount {namespace}/{name} (made by kube-controller-manager's serviceaccount controller)",
            timeout=timeout,
            gone=gone,
        )

    def wait_for_pod(
        self,
        namespace: str,
        name: str,
        condition: Callable[[Json], bool],
        *,
        what: str,
        timeout: float,
        gone: Callable[[], str | None] | None = None,
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

        return self._watch_pod(namespace, name, satisfied, what=what, timeout=timeout, gone=gone)

    def wait_for_pod_gone(
        self, namespace: str, name: str, *, timeout: float, gone: Callable[[], str | None] | None = None
    ) -> None:
        """Watch until the Pod object no longer exists; on timeout describe what was seen."""
        self._watch_pod(
            namespace,
            name,
            lambda pods: True if name not in pods else None,
            what=f"Pod {name} to be gone",
            timeout=timeout,
            gone=gone,
        )

    def _watch_pod(
        self,
        namespace: str,
        name: str,
        satisfied: Callable[[Mapping[str, Json]], T | None],
        *,
        what: str,
        timeout: float,
        gone: Callable[[], str | None] | None,
    ) -> T:
        return watch_until(
            self.core.list_namespaced_pod,
            namespace,
            field_selector=f"metadata.name={name}",
            satisfied=satisfied,
            what=what,
            timeout=timeout,
            gone=gone,
            describe=lambda pods: self.describe_pod(pods[name]) if name in pods else "no such Pod",
        )

    def wait_for_event(
        self, namespace: str, involved: str, condition: Callable[[Json], bool], *, what: str, timeout: float
    ) -> Json:
        """The first event about `involved` for which `condition(event)` holds, listed or watched for.

        The kubelet records events asynchronously, so one can land after the Pod state that follows it.
        """
        events = self.wait_for_events(
            namespace, involved, lambda seen: any(condition(event) for event in seen), what=what, timeout=timeout
        )
        return next(event for event in events if condition(event))

    def wait_for_events(
        self,
        namespace: str,
        involved: str,
        enough: Callable[[list[Json]], bool],
        *,
        what: str,
        timeout: float,
    ) -> list[Json]:
        """Every event about `involved` once `enough(events)` holds (counts grow on the same Event object:
        watched as modifications), listed or watched for."""

        def satisfied(events: Mapping[str, Json]) -> list[Json] | None:
            seen = list(events.values())
            return seen if enough(seen) else None

        def describe(events: Mapping[str, Json]) -> str:
            return "events seen:\n" + (
                "\n".join(
                    f"  event {e.get('type')} {e.get('reason')} (x{e.get('count') or 1}): {e.get('message', '')}"
                    for e in list(events.values())[-15:]
                )
                or "  none"
            )

        return watch_until(
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
        items = raw(self.core.list_namespaced_event(namespace, _preload_content=False, **selector))["items"]
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
