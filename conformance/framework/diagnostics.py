"""The one place that dumps diagnostics: what a failed test's Pods, events, logs and nodes showed.

Workers collect diagnostics for their own failed tests (they hold the namespace); the controller
collects every node's logs once at the end. Diagnostics never mask a failure: each step is guarded,
and a step that fails says so in the bundle.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TypeVar

import yaml

from conformance.framework.manifests import containers
from conformance.framework.session import SuiteSession
from conformance.infra.files import write_atomic
from conformance.infra.kube import Kube
from conformance.infra.process import run

T = TypeVar("T")


def _safe_name(nodeid: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid)[-150:]


class _Bundle:
    """Diagnostics written step by step; a step that fails is noted, and the next one still runs."""

    def __init__(self, target: Path | None) -> None:
        self.target = target
        self.summary: list[str] = []
        self.failures: list[str] = []

    def step(self, what: str, action: Callable[[], T]) -> T | None:
        """The action's result, or None when it failed (noted in the bundle)."""
        try:
            return action()
        except Exception as error:  # noqa: BLE001 - diagnostics must never mask the test's failure
            self.failures.append(f"diagnostics failed: {what}: {type(error).__name__}: {error}".splitlines()[0])
            return None

    def write(self, name: str, text: str) -> None:
        if self.target is not None:
            self.target.mkdir(parents=True, exist_ok=True)
            write_atomic(self.target / name, text)


def diagnostics_dir(report_dir: str, nodeid: str) -> Path:
    return Path(report_dir) / "diagnostics" / _safe_name(nodeid)


def collect_diagnostics(suite: SuiteSession, nodeid: str, namespaces: list[str], report_dir: str | None) -> str:
    """Describe every Pod in the test's namespaces (returned, for the report's section) and, with a
    report directory, dump Pods, events, container logs and the node side under diagnostics/<test>/."""
    bundle = _Bundle(diagnostics_dir(report_dir, nodeid) if report_dir else None)
    kube = bundle.step("API client", partial(Kube, suite.handle.kubeconfig, suite.handle.context))
    nodes: set[str] = set()
    if kube is not None:
        for namespace in namespaces:
            bundle.step(f"namespace {namespace}", partial(_namespace, bundle, kube, namespace, nodes))
    if bundle.target is not None:
        _node_side_diagnostics(bundle, suite, namespaces, nodes)
        bundle.summary.append(f"full diagnostics: {bundle.target}")
    if bundle.failures:
        bundle.write("diagnostics-failed.txt", "\n".join(bundle.failures) + "\n")
    return "\n".join(bundle.summary + bundle.failures)


def _namespace(bundle: _Bundle, kube: Kube, namespace: str, nodes: set[str]) -> None:
    pods = kube.list_pods(namespace)
    for pod in pods:
        bundle.summary.append(kube.describe_pod(pod))
        if pod["spec"].get("nodeName"):
            nodes.add(pod["spec"]["nodeName"])
    if bundle.target is None:
        return
    bundle.write(f"{namespace}.pods.yaml", yaml.safe_dump_all(pods, sort_keys=False))
    events = kube.events(namespace)
    bundle.write(
        f"{namespace}.events.txt",
        "".join(
            f"{e.get('firstTimestamp') or e.get('eventTime')} {e.get('type')} {e.get('reason')} "
            f"{e.get('involvedObject', {}).get('name')}: {e.get('message', '')}\n"
            for e in events
        ),
    )
    for pod in pods:
        pod_name = pod["metadata"]["name"]
        for container in containers(pod):
            bundle.step(
                f"log of {pod_name}/{container['name']}",
                partial(_container_log, bundle, kube, namespace, pod_name, container["name"]),
            )


def _container_log(bundle: _Bundle, kube: Kube, namespace: str, pod: str, container: str) -> None:
    bundle.write(f"{pod}.{container}.log", kube.pod_log(namespace, pod, container))


def _node_side_diagnostics(bundle: _Bundle, suite: SuiteSession, namespaces: list[str], nodes: set[str]) -> None:
    """On each node the test's Pods ran on: the runtime's and kubelet's log lines about the test's
    namespaces (plus a tail for context) and `crictl info`, where the provider gives node access."""
    access = suite.handle.node_access

    def logs(node: str, component: str, command: tuple[str, ...]) -> None:
        result = run(access.on(node, *command), what=f"{component} log on {node}", timeout=60, check=False)
        lines = result.stdout.splitlines()
        about = [line for line in lines if any(namespace in line for namespace in namespaces)]
        bundle.write(f"{node}.{component}.about-test.log", "\n".join(about[-500:]) + "\n")
        bundle.write(f"{node}.{component}.tail.log", "\n".join(lines[-200:]) + "\n")

    def crictl_info(node: str, crictl: str) -> None:
        result = run(access.on(node, crictl, "info"), what=f"crictl info on {node}", timeout=30, check=False)
        bundle.write(f"{node}.crictl-info.json", result.stdout or result.stderr)

    for node in sorted(nodes):
        for component, command in access.logs.items():
            bundle.step(f"{component} log on {node}", partial(logs, node, component, command))
        if access.crictl:
            bundle.step(f"crictl info on {node}", partial(crictl_info, node, access.crictl))


def collect_node_logs(suite: SuiteSession, report_dir: Path) -> Path | None:
    """Every node's logs (kind: `kind export logs`) into the report directory, once, after failures."""
    command = suite.handle.node_access.collect
    if not command:
        return None
    target = report_dir / "node-logs"
    result = run(
        [part.replace("{dir}", str(target)) for part in command], what="collect node logs", timeout=300, check=False
    )
    if result.returncode != 0:
        print(f"ivc: collecting node logs failed: {(result.stderr or result.stdout).strip()[-300:]}", file=sys.stderr)
        return None
    return target
