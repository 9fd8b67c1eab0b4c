"""Kubernetes API access shared by the providers and the test framework.

One client constructor (an explicit kubeconfig and context, never the process-global default), one
definition of a transient API error and its bounded retry, one call that tolerates a single status
(409 on create, 404 on delete), and one wait for API objects: `watch_until`, which lists, then
watches from the list's resourceVersion, re-lists on 410 Gone or a dropped stream, and ends the
moment its condition is decided. Node readiness and the default ServiceAccount are waits on it.

The kubernetes client is imported lazily: `--help`, the CLI's usage errors and the unit tests of
pure logic never load it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException
from tenacity import retry, retry_if_exception, stop_after_delay, wait_exponential
from urllib3.exceptions import HTTPError

from conformance.cluster.errors import ClusterError

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

Json = dict[str, Any]
T = TypeVar("T")
TRANSIENT_STATUS = frozenset({0, 429, 500, 502, 503, 504})
# Without a callback, a watch window is this long; a `gone` check runs between windows.
WATCH_WINDOW = 30.0
GONE_CHECK_WINDOW = 3.0


class WaitTimeout(AssertionError):
    """A bounded wait on API objects ran out; the message says what was awaited and what was seen.

    An AssertionError, so a test that waits in vain fails (not errors); providers turn it into a
    ClusterError.
    """


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


def wait_nodes_ready(
    kubeconfig: str,
    context: str | None = None,
    *,
    count: int = 1,
    timeout: float,
    gone: Callable[[], str | None] | None = None,
) -> list[str]:
    """Wait until at least `count` nodes are Ready; returns their names."""

    def ready(nodes: Mapping[str, Json]) -> list[str] | None:
        names = sorted(name for name, node in nodes.items() if node_is_ready(node))
        return names if len(names) >= count else None

    def seen(nodes: Mapping[str, Json]) -> str:
        return ", ".join(f"{name} ready={node_is_ready(node)}" for name, node in sorted(nodes.items())) or "no nodes"

    with new_client(kubeconfig, context) as api:
        try:
            return watch_until(
                client.CoreV1Api(api).list_node,
                satisfied=ready,
                what=f"{count} Ready node(s)",
                timeout=timeout,
                describe=seen,
                gone=gone,
            )
        except WaitTimeout as error:
            raise ClusterError(str(error).replace("\n", ": ")) from None


def wait_for_service_account(
    core: Any,
    namespace: str,
    name: str = "default",
    *,
    timeout: float,
    gone: Callable[[], str | None] | None = None,
) -> None:
    """Pods are rejected until the controller-manager created the namespace's ServiceAccount."""
    watch_until(
        core.list_namespaced_service_account,
        namespace,
        field_selector=f"metadata.name={name}",
        satisfied=lambda accounts: True if name in accounts else None,
        what=f"ServiceAccount {namespace}/{name} (made by kube-controller-manager's serviceaccount controller)",
        timeout=timeout,
        gone=gone,
    )


def wait_default_service_account(
    kubeconfig: str, context: str | None = None, *, timeout: float, gone: Callable[[], str | None] | None = None
) -> None:
    """The first Pod of a fresh cluster needs `default/default`; providers wait for it before handing over."""
    with new_client(kubeconfig, context) as api:
        try:
            wait_for_service_account(client.CoreV1Api(api), "default", timeout=timeout, gone=gone)
        except WaitTimeout as error:
            raise ClusterError(str(error)) from None


def apply_config_map(kubeconfig: str, context: str | None, namespace: str, name: str, data: Mapping[str, str]) -> None:
    """Create or replace a ConfigMap (kind's local-registry-hosting document)."""
    body = client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name, namespace=namespace), data=dict(data))
    with new_client(kubeconfig, context) as api:
        core = client.CoreV1Api(api)
        try:
            if ignoring(409, transient_retry(core.create_namespaced_config_map), namespace, body) is None:
                transient_retry(core.replace_namespaced_config_map)(name, namespace, body)
        except client.ApiException as exc:
            raise ClusterError(f"cannot write ConfigMap {namespace}/{name}: HTTP {exc.status} {exc.reason}") from exc
