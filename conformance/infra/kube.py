"""The one way to the Kubernetes API: client construction, transient retry, watches, and `Kube`.

One client constructor (an explicit kubeconfig and context, never the process-global default), one
definition of a transient API error and its bounded retry, one call that tolerates a single status
(409 on create, 404 on delete), and one wait for API objects: `watch_until`, which lists, then
watches from the list's resourceVersion, re-lists on 410 Gone or a dropped stream, and ends the
moment its condition is decided. `Kube` is what every caller holds: providers (readiness, RBAC,
ConfigMaps), the framework (Pods, events, exec, leases) and the benchmark. Objects are plain dicts
(raw JSON, so no field is lost to an old model). The kubernetes client provides the kubeconfig
loading, the authenticated transport (TLS, client certificates, proxy, token refresh) and the exec
websocket; `Kube.request` sends plain REST calls through that transport rather than through the
generated typed API classes, which the suite does not need (it reads raw JSON) and which cost
about a second of CPU per process to import on client 37 (pydantic-validated signatures), on every
xdist worker of a 2-core machine. Each exec opens its own websocket from the shared configuration
and never patches a shared ApiClient (kubernetes-client/python#928).
The predicates over raw Pods (container statuses of every kind, running, waiting reason) live here too.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlencode

import urllib3
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException
from kubernetes.stream import ws_client
from tenacity import retry, retry_if_exception, stop_after_delay, wait_exponential
from urllib3.exceptions import HTTPError

from conformance.infra.errors import ClusterError
from conformance.infra.wait import NotYet, WaitTimeout, wait_for

if TYPE_CHECKING:
    from kubernetes.client import ApiClient, Configuration

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
]

Json = dict[str, Any]
Query = Mapping[str, str | int | list[str]]
Timeout = float | tuple[float, float] | None
T = TypeVar("T")
TRANSIENT_STATUS = frozenset({0, 429, 500, 502, 503, 504})
# Without a callback, a watch window is this long; a `gone` check runs between windows.
WATCH_WINDOW = 30.0
GONE_CHECK_WINDOW = 3.0
# The keywords kubernetes.watch.Watch passes to a list call, as the apiserver's query parameters.
WATCH_QUERY = {"watch": "watch", "resource_version": "resourceVersion", "timeout_seconds": "timeoutSeconds"}


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
    """The JSON body of a response: every field, whatever the client's models know."""
    return json.loads(response.data)


def auth_headers(configuration: Configuration) -> dict[str, str]:
    """The headers the configuration authenticates with (a bearer token, refreshed by its hook when an
    exec plugin or a token file provides it); client certificates live in the transport instead."""
    return {
        setting["key"]: setting["value"]
        for setting in configuration.auth_settings().values()
        if setting["in"] == "header" and setting["value"]
    }


def api_exception(response: urllib3.BaseHTTPResponse) -> ApiException:
    """What the client raises for a non-2xx answer: status, reason, the body as text (the Status JSON)."""
    error = ApiException(status=response.status, reason=response.reason)
    error.body = response.data.decode(errors="replace")
    error.headers = response.headers
    return error


def urllib3_timeout(timeout: Timeout) -> urllib3.Timeout | None:
    """The client's `_request_timeout` convention: seconds in all, or (connect, read); None: no bound."""
    if timeout is None:
        return None
    if isinstance(timeout, tuple):
        return urllib3.Timeout(connect=timeout[0], read=timeout[1])
    return urllib3.Timeout(total=timeout)


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
    """One per process (xdist worker). Holds the kubeconfig's configuration and its transport.

    `retries=0` makes each call a single attempt (a probe whose own timeout is the bound)."""

    def __init__(self, kubeconfig: str, context: str | None = None, *, retries: int | None = None) -> None:
        self.kubeconfig = kubeconfig
        self.context = context
        self.api_client = new_client(kubeconfig, context, retries=retries)
        self.configuration: Configuration = self.api_client.configuration

    def close(self) -> None:
        self.api_client.close()

    @property
    def server(self) -> str:
        """The apiserver's URL, as the kubeconfig names it."""
        return str(self.configuration.host)

    # -- the one HTTP call ----------------------------------------------------------------------
    def url(self, path: str, query: Query | None = None) -> str:
        return self.configuration.host + path + ("?" + urlencode(query, doseq=True) if query else "")

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Query | None = None,
        body: Json | None = None,
        content_type: str = "application/json",
        timeout: Timeout = None,
        stream: bool = False,
    ) -> urllib3.BaseHTTPResponse:
        """One call to the apiserver through the client's transport; raises ApiException unless 2xx.
        `stream` leaves the body unread (a watch)."""
        headers = {"Accept": "application/json", **auth_headers(self.configuration)}
        if body is not None:
            headers["Content-Type"] = content_type
        response = self.api_client.rest_client.pool_manager.request(
            method,
            self.url(path, query),
            headers=headers,
            body=None if body is None else json.dumps(body),
            timeout=urllib3_timeout(timeout),
            preload_content=not stream,
        )
        if not 200 <= response.status <= 299:
            response.read()
            raise api_exception(response)
        return response

    def get(self, path: str, query: Query | None = None, timeout: Timeout = None) -> Json:
        return raw(self.request("GET", path, query=query, timeout=timeout))

    def answering_version(self, timeout: tuple[float, float]) -> str:
        """gitVersion from one bounded `/version` call, no retry: proves the server answers and accepts the
        credentials. Raises what the call raised."""
        return str(self.get("/version", timeout=timeout)["gitVersion"])

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

        return self.watch_until(
            "/api/v1/nodes", satisfied=ready, what=f"{count} Ready node(s)", timeout=timeout, describe=seen, gone=gone
        )

    @transient_retry
    def read_node(self, name: str) -> Json | None:
        try:
            return self.get(f"/api/v1/nodes/{name}")
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def apply_config_map(self, namespace: str, name: str, data: Mapping[str, str]) -> None:
        """Create or replace a ConfigMap (kind's local-registry-hosting document)."""
        body = {"metadata": {"name": name, "namespace": namespace}, "data": dict(data)}
        collection = f"/api/v1/namespaces/{namespace}/configmaps"
        try:
            if ignoring(409, transient_retry(self.request), "POST", collection, body=body) is None:
                transient_retry(self.request)("PUT", f"{collection}/{name}", body=body)
        except ApiException as exc:
            raise ClusterError(f"cannot write ConfigMap {namespace}/{name}: HTTP {exc.status} {exc.reason}") from exc

    def ensure_cluster_role_binding(self, name: str, role: str, subjects: list[tuple[str, str]]) -> None:
        """A ClusterRoleBinding of `role` to (kind, name) subjects, unless one of that name exists."""
        body = {
            "metadata": {"name": name, "labels": {"ivc.local/created-by": "ivc"}},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [{"kind": k, "name": n, "apiGroup": "rbac.authorization.k8s.io"} for k, n in subjects],
        }
        path = "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings"
        ignoring(409, transient_retry(self.request), "POST", path, body=body)

    # -- reads ----------------------------------------------------------------------------------
    @transient_retry
    def server_version(self) -> str:
        return str(self.get("/version")["gitVersion"])

    @transient_retry
    def read_pod(self, namespace: str, name: str) -> Json:
        return self.get(f"/api/v1/namespaces/{namespace}/pods/{name}")

    @transient_retry
    def list_pods(self, namespace: str) -> list[Json]:
        return self.get(f"/api/v1/namespaces/{namespace}/pods")["items"]

    @transient_retry
    def pods_on_node(self, node: str) -> list[Json]:
        """Every Pod the scheduler put on `node`, in all namespaces."""
        return self.get("/api/v1/pods", {"fieldSelector": f"spec.nodeName={node}"})["items"]

    @transient_retry
    def nodes(self) -> list[Json]:
        return self.get("/api/v1/nodes")["items"]

    def node_proxy(self, node: str, path: str) -> str:
        """What the kubelet of `node` answers on `path`, through the apiserver's node proxy."""
        return self.request("GET", f"/api/v1/nodes/{node}/proxy/{path}").data.decode()

    @transient_retry
    def node_metrics(self, node: str) -> str:
        """The kubelet's /metrics through the apiserver's node proxy."""
        return self.node_proxy(node, "metrics")

    def wait_kubelet_serving(self, node: str, *, timeout: float) -> None:
        """Until the kubelet of `node` answers /healthz through the apiserver's node proxy and knows every Pod
        the API has running there. After a restart it answers /healthz before it has read its Pods back, and
        an exec meanwhile gets 404 'pod does not exist'."""

        def serving() -> None:
            try:
                answer = self.node_proxy(node, "healthz")
                if answer.strip() != "ok":
                    raise NotYet(f"the kubelet of {node} answers /healthz with {answer[:80]!r}")
                known = json.loads(self.node_proxy(node, "pods"))
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
        return self.create(namespace, "Pod", body, dry_run=dry_run)

    @transient_retry
    def patch_pod(self, namespace: str, name: str, body: Json, subresource: str = "") -> Json:
        """A strategic merge patch of the Pod (or of a subresource); returns it as stored."""
        path = f"/api/v1/namespaces/{namespace}/pods/{name}" + (f"/{subresource}" if subresource else "")
        return raw(self.request("PATCH", path, body=body, content_type="application/strategic-merge-patch+json"))

    def add_ephemeral_container(self, namespace: str, pod: str, container: Json) -> Json:
        """Add an ephemeral container to a running Pod (the pods/ephemeralcontainers subresource, as
        `kubectl debug` does); returns the Pod as stored."""
        return self.patch_pod(namespace, pod, {"spec": {"ephemeralContainers": [container]}}, "ephemeralcontainers")

    @transient_retry
    def delete_pod(self, namespace: str, name: str, grace_seconds: int = 0) -> None:
        path = f"/api/v1/namespaces/{namespace}/pods/{name}"
        ignoring(404, self.request, "DELETE", path, query={"gracePeriodSeconds": grace_seconds})

    @transient_retry
    def create_namespace(self, name: str, labels: dict[str, str], annotations: dict[str, str]) -> None:
        body = {"metadata": {"name": name, "labels": labels, "annotations": annotations}}
        self.request("POST", "/api/v1/namespaces", body=body)

    @transient_retry
    def delete_namespace(self, name: str) -> None:
        """Non-blocking: the namespace controller finishes the job while the run goes on."""
        query = {"propagationPolicy": "Background", "gracePeriodSeconds": 0}
        ignoring(404, self.request, "DELETE", f"/api/v1/namespaces/{name}", query=query)

    @transient_retry
    def create(self, namespace: str, kind: str, body: Json, dry_run: bool = False) -> Json:
        """Create a namespaced object (server-side dry run on request); returns it as the apiserver stored it."""
        collections = {
            "Pod": f"/api/v1/namespaces/{namespace}/pods",
            "Secret": f"/api/v1/namespaces/{namespace}/secrets",
            "ServiceAccount": f"/api/v1/namespaces/{namespace}/serviceaccounts",
            "Deployment": f"/apis/apps/v1/namespaces/{namespace}/deployments",
        }
        query = {"dryRun": "All"} if dry_run else None
        return raw(self.request("POST", collections[kind], query=query, body=body))

    @transient_retry
    def list_namespaces(self, selector: str) -> list[Json]:
        return self.get("/api/v1/namespaces", {"labelSelector": selector})["items"]

    def ensure_namespace(self, name: str, labels: dict[str, str], annotations: dict[str, str]) -> None:
        """Create the namespace unless it exists (another process made it first), then wait for its
        default ServiceAccount."""
        ignoring(409, self.create_namespace, name, labels=labels, annotations=annotations)
        self.wait_for_service_account(name)

    # -- leases (coordination.k8s.io): a run's proof of life ------------------------------------
    @staticmethod
    def leases(namespace: str) -> str:
        return f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"

    @transient_retry
    def create_lease(self, namespace: str, name: str, holder: str, seconds: int, now: str) -> None:
        body = {
            "metadata": {"name": name},
            "spec": {"holderIdentity": holder, "leaseDurationSeconds": seconds, "acquireTime": now, "renewTime": now},
        }
        self.request("POST", self.leases(namespace), body=body)

    @transient_retry
    def renew_lease(self, namespace: str, name: str, now: str) -> None:
        body = {"spec": {"renewTime": now}}
        path = f"{self.leases(namespace)}/{name}"
        self.request("PATCH", path, body=body, content_type="application/merge-patch+json")

    @transient_retry
    def read_lease(self, namespace: str, name: str) -> Json | None:
        try:
            return self.get(f"{self.leases(namespace)}/{name}")
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    # -- waits: one watch primitive, each wait ending as soon as the outcome is decided ------------
    def watch_until(
        self,
        path: str,
        *,
        satisfied: Callable[[Mapping[str, Json]], T | None],
        what: str,
        timeout: float,
        field_selector: str | None = None,
        describe: Callable[[Mapping[str, Json]], str] | None = None,
        gone: Callable[[], str | None] | None = None,
    ) -> T:
        """Watch the collection at `path` until `satisfied(objects by name)` returns a result: list, then watch
        from the list's resourceVersion, re-list on 410 Gone or a dropped stream.

        `satisfied` sees the current set after the list and after every event, and may raise to end
        the wait with a failure (a Pod deleted while awaited). `gone` is checked between watch windows
        (every few seconds when given): a reason string ends the wait at once, as a ClusterError.
        """
        deadline = time.monotonic() + timeout
        selector = {"fieldSelector": field_selector} if field_selector else {}

        def watch_call(**params: Any) -> urllib3.BaseHTTPResponse:
            # kubernetes.watch.Watch calls this as it calls a generated list method: with its keywords.
            if unknown := set(params) - WATCH_QUERY.keys() - {"_preload_content", "_request_timeout"}:
                raise TypeError(f"kubernetes.watch passed keywords this watch does not translate: {sorted(unknown)}")
            query = {WATCH_QUERY[key]: str(value).lower() for key, value in params.items() if key in WATCH_QUERY}
            timeout = params["_request_timeout"]
            return self.request("GET", path, query={**selector, **query}, timeout=timeout, stream=True)

        while True:
            body = transient_retry(self.get)(path, selector)
            objects: dict[str, Json] = {item["metadata"]["name"]: item for item in body.get("items", [])}
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
                    watch_call,
                    resource_version=body["metadata"].get("resourceVersion"),
                    timeout_seconds=max(1, int(window)),
                    _request_timeout=window + 5,
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

    def wait_for_service_account(
        self, namespace: str, name: str = "default", timeout: float = 60, gone: Callable[[], str | None] | None = None
    ) -> None:
        """Pods cannot be created before the namespace's ServiceAccount exists (e2e framework rule)."""
        self.watch_until(
            f"/api/v1/namespaces/{namespace}/serviceaccounts",
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
        return self.watch_until(
            f"/api/v1/namespaces/{namespace}/pods",
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

        return self.watch_until(
            f"/api/v1/namespaces/{namespace}/events",
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
        query: Query = {"command": command, "stdout": "true", "stderr": "true", "stdin": "false", "tty": "false"}
        if container:
            query = {**query, "container": container}
        url = self.url(f"/api/v1/namespaces/{namespace}/pods/{pod}/exec", query)

        @transient_retry
        def run() -> ExecResult:
            # The websocket call kubernetes.stream makes, without the generated method it would patch;
            # a failed handshake raises ApiException(status=0), which is transient.
            ws = ws_client.websocket_call(
                self.configuration, "GET", url, headers=auth_headers(self.configuration), _preload_content=False
            )
            try:
                ws.run_forever(timeout=timeout)
                if ws.is_open():
                    raise WaitTimeout(f"exec {command} in {namespace}/{pod} did not finish within {timeout:.0f}s")
                returncode = ws.returncode
                return ExecResult(returncode if returncode is not None else -1, ws.read_stdout(), ws.read_stderr())
            finally:
                ws.close()

        return run()

    # -- observation ----------------------------------------------------------------------------
    def events(self, namespace: str, involved: str | None = None) -> list[Json]:
        selector = {"fieldSelector": f"involvedObject.name={involved}"} if involved else None
        items = self.get(f"/api/v1/namespaces/{namespace}/events", selector)["items"]
        return sorted(items, key=lambda e: e.get("firstTimestamp") or e.get("eventTime") or "")

    def pod_log(self, namespace: str, name: str, container: str, previous: bool = False) -> str:
        try:
            query = {"container": container, "previous": str(previous).lower()}
            response = self.request("GET", f"/api/v1/namespaces/{namespace}/pods/{name}/log", query=query)
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
