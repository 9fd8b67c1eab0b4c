"""The suite's only contact with the Kubernetes API: create, wait, exec, events, metrics.

Wraps the official client so tests never meet its quirks: objects are plain dicts (raw JSON,
so no field is lost to an old model), waits are watches with deadlines that say what they saw,
transient API errors are retried with tenacity, and every exec gets its own ApiClient
(kubernetes-client/python#928: a shared client breaks under concurrent websocket streams).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import urllib3
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException
from kubernetes.stream import stream
from tenacity import retry, retry_if_exception, stop_after_delay, wait_exponential

Json = dict[str, Any]

TRANSIENT_STATUS = {429, 500, 502, 503, 504}


def _is_transient(error: BaseException) -> bool:
    if isinstance(error, ApiException):
        return error.status in TRANSIENT_STATUS or error.status == 0
    return isinstance(error, (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError))


# Bounded: a flapping apiserver gets 30 s, then the real error surfaces.
transient_retry = retry(
    retry=retry_if_exception(_is_transient),
    stop=stop_after_delay(30),
    wait=wait_exponential(multiplier=0.2, max=3),
    reraise=True,
)


class WaitTimeout(AssertionError):
    """A bounded wait ran out; the message says what was waited for and what was seen."""


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
        return config.new_client_from_config(config_file=self.kubeconfig, context=self.context)

    # -- reads: typed API calls with _preload_content=False give raw JSON on every client >= 31 ----
    @staticmethod
    def _json(response: Any) -> Json:
        return json.loads(response.data)

    @transient_retry
    def server_version(self) -> str:
        return self._json(client.VersionApi(self.api_client).get_code(_preload_content=False))["gitVersion"]

    @transient_retry
    def read_pod(self, namespace: str, name: str) -> Json:
        return self._json(self.core.read_namespaced_pod(name, namespace, _preload_content=False))

    @transient_retry
    def list_pods(self, namespace: str) -> list[Json]:
        return self._json(self.core.list_namespaced_pod(namespace, _preload_content=False))["items"]

    @transient_retry
    def nodes(self) -> list[Json]:
        return self._json(self.core.list_node(_preload_content=False))["items"]

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
        return json.loads(response.data)

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
        return json.loads(response.data)

    def namespaces_with_label(self, selector: str, older_than: float | None = None) -> list[str]:
        """Active namespaces matching `selector`; with `older_than`, only those created that many seconds ago."""
        items = self._json(self.core.list_namespace(label_selector=selector, _preload_content=False))["items"]
        now = datetime.now(UTC)
        return [
            item["metadata"]["name"] for item in items
            if item["status"].get("phase") != "Terminating" and (
                older_than is None
                or (now - datetime.fromisoformat(item["metadata"]["creationTimestamp"])).total_seconds() > older_than
            )
        ]

    # -- waits ----------------------------------------------------------------------------------
    def wait_for_service_account(self, namespace: str, name: str = "default", timeout: float = 60) -> None:
        """Pods cannot be created before the namespace's ServiceAccount exists (e2e framework rule)."""
        deadline = time.monotonic() + timeout
        for event in watch.Watch().stream(
            self.core.list_namespaced_service_account, namespace, field_selector=f"metadata.name={name}",
            timeout_seconds=int(timeout),
        ):
            if event["type"] in ("ADDED", "MODIFIED"):
                return
            if time.monotonic() > deadline:
                break
        raise WaitTimeout(f"ServiceAccount {namespace}/{name} did not appear within {timeout:.0f}s "
                          "(is kube-controller-manager running with --service-account-private-key-file?)")

    def _watch(self, list_call: Callable[..., Any], namespace: str, field_selector: str, resource_version: str,
               deadline: float) -> Iterator[Json]:
        """Watch events until the deadline. Ends quietly on 410 Gone or a dropped connection:
        callers then re-read and watch again within their own deadline."""
        remaining = deadline - time.monotonic()
        try:
            for event in watch.Watch().stream(
                list_call, namespace, field_selector=field_selector, resource_version=resource_version,
                timeout_seconds=max(1, int(remaining)), _request_timeout=remaining + 5,
            ):
                if event["type"] == "ERROR":
                    return
                yield event
                if time.monotonic() >= deadline:
                    return
        except ApiException as error:
            if error.status != 410 and not _is_transient(error):
                raise
        except urllib3.exceptions.HTTPError:
            return

    def _watch_pod(self, namespace: str, name: str, resource_version: str, deadline: float) -> Iterator[Json]:
        return self._watch(self.core.list_namespaced_pod, namespace, f"metadata.name={name}", resource_version,
                           deadline)

    def wait_for_pod(self, namespace: str, name: str, condition: Callable[[Json], bool], *, what: str,
                     timeout: float) -> Json:
        """Watch the Pod until `condition(pod)` holds; on timeout describe what was seen."""
        deadline = time.monotonic() + timeout
        pod = self.read_pod(namespace, name)
        while not condition(pod):
            if time.monotonic() >= deadline:
                raise WaitTimeout(f"timed out after {timeout:.0f}s waiting for {what}\n{self.describe_pod(pod)}")
            for event in self._watch_pod(namespace, name, pod["metadata"]["resourceVersion"], deadline):
                if event["type"] == "DELETED":
                    raise WaitTimeout(f"Pod {namespace}/{name} was deleted while waiting for {what}")
                pod = event["raw_object"]
                if condition(pod):
                    break
            else:
                pod = self.read_pod(namespace, name)
        return pod

    def wait_for_pod_gone(self, namespace: str, name: str, *, timeout: float) -> None:
        """Watch until the Pod object no longer exists; on timeout describe what was seen."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                pod = self.read_pod(namespace, name)
            except ApiException as error:
                if error.status == 404:
                    return
                raise
            if time.monotonic() >= deadline:
                raise WaitTimeout(f"timed out after {timeout:.0f}s waiting for Pod {name} to be gone\n"
                                  f"{self.describe_pod(pod)}")
            for event in self._watch_pod(namespace, name, pod["metadata"]["resourceVersion"], deadline):
                if event["type"] == "DELETED":
                    return

    def wait_for_event(self, namespace: str, involved: str, condition: Callable[[Json], bool], *, what: str,
                       timeout: float) -> Json:
        """The first event about `involved` for which `condition(event)` holds, listed or watched for.

        The kubelet records events asynchronously, so one can land after the Pod state that follows it.
        """
        deadline = time.monotonic() + timeout
        selector = f"involvedObject.name={involved}"
        while True:
            listed = self._json(self.core.list_namespaced_event(namespace, field_selector=selector,
                                                                _preload_content=False))
            found = next((event for event in listed["items"] if condition(event)), None)
            if found is not None:
                return found
            if time.monotonic() >= deadline:
                seen = "\n".join(f"  event {e.get('type')} {e.get('reason')}: {e.get('message', '')}"
                                 for e in listed["items"][-15:])
                raise WaitTimeout(f"timed out after {timeout:.0f}s waiting for {what}; events seen:\n"
                                  f"{seen or '  none'}")
            for event in self._watch(self.core.list_namespaced_event, namespace, selector,
                                     listed["metadata"]["resourceVersion"], deadline):
                if event["type"] in ("ADDED", "MODIFIED") and condition(event["raw_object"]):
                    return event["raw_object"]

    # -- exec -----------------------------------------------------------------------------------
    def exec(self, namespace: str, pod: str, command: list[str], container: str | None = None,
             timeout: float = 60) -> ExecResult:
        @transient_retry
        def run() -> ExecResult:
            api = client.CoreV1Api(self.new_api_client())
            kwargs = {"container": container} if container else {}
            ws = stream(
                api.connect_get_namespaced_pod_exec, pod, namespace, command=command, stderr=True, stdin=False,
                stdout=True, tty=False, _preload_content=False, **kwargs,
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
        items = self._json(self.core.list_namespaced_event(namespace, _preload_content=False, **selector))["items"]
        return sorted(items, key=lambda e: e.get("firstTimestamp") or e.get("eventTime") or "")

    def pod_log(self, namespace: str, name: str, container: str, previous: bool = False) -> str:
        try:
            response = self.core.read_namespaced_pod_log(name, namespace, container=container, previous=previous,
                                                         _preload_content=False)
            return response.data.decode(errors="replace")
        except ApiException as error:
            return f"<no log: {error.status} {error.reason}>"

    def describe_pod(self, pod: Json) -> str:
        """Phase, per-container state and the Pod's events: what a human needs to see."""
        meta, status = pod["metadata"], pod.get("status", {})
        lines = [f"Pod {meta['namespace']}/{meta['name']}: phase={status.get('phase')} "
                 f"reason={status.get('reason', '')} message={status.get('message', '')}".rstrip()]
        for kind in ("initContainerStatuses", "containerStatuses"):
            for cs in status.get(kind, []):
                lines.append(f"  container {cs['name']}: {describe_state(cs.get('state', {}))} "
                             f"restarts={cs.get('restartCount', 0)}")
        for condition in status.get("conditions", []):
            if condition.get("status") != "True":
                lines.append(f"  condition {condition['type']}=False {condition.get('reason', '')} "
                             f"{condition.get('message', '')}".rstrip())
        try:
            events = self.events(meta["namespace"], meta["name"])
        except ApiException:
            events = []
        for event in events[-15:]:
            lines.append(f"  event {event.get('type')} {event.get('reason')}: {event.get('message', '')}"
                         f" (x{event.get('count', 1)})")
        return "\n".join(lines)


def describe_state(state: Json) -> str:
    for key, value in state.items():
        detail = value.get("reason") or ""
        message = value.get("message") or ""
        return f"{key}({detail}{': ' + message if message else ''})"
    return "unknown"


# -- predicates over raw Pods -----------------------------------------------------------------
def container_status(pod: Json, container: str) -> Json | None:
    status = pod.get("status", {})
    for cs in status.get("containerStatuses", []) + status.get("initContainerStatuses", []):
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
