"""The kubelet's image volume counters, read so that an increase is this test's Pod's alone.

The counters (kubelet_image_volume_*_total) are node-wide and unlabelled, and the kubelet adds to
them at every container start that mounts an image volume, failed attempts included (kubernetes
v1.36.3 pkg/kubelet/kuberuntime/kuberuntime_manager.go incrementImageVolumeMetrics, called after
startContainer). A Pod that runs steadily adds nothing; one that is being created, retried or
restarted does. So a measurement counts only on a node where, from the first scrape to the last, no
other Pod with an image volume was starting containers: `NodeCounters` picks such a node of the
test's node group (waiting, bounded, for one to become quiet), and `alone()` checks afterwards that
it stayed so. Where that cannot be had (other tenants keep mounting, Pods cannot be listed), the
check is skipped with that reason. The run's own other tests are held off by the mount lock
(run_locks.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import pytest
from kubernetes.client.exceptions import ApiException

from conformance.infra.kube import Json, Kube, WaitTimeout, container_statuses

QUIET_TIMEOUT = 60.0
# (namespace, name, uid) → each container's (restart count, waiting?)
Activity = dict[tuple[str, str, str], tuple[tuple[int, bool], ...]]


def _mounts_images(pod: Json) -> bool:
    return any(volume.get("image") for volume in pod.get("spec", {}).get("volumes", []))


def activity(pods: Mapping[str, Json] | Sequence[Json], own_namespace: str) -> Activity:
    """What other Pods with image volumes on a node are doing (terminated Pods start nothing)."""
    found: Activity = {}
    for pod in pods.values() if isinstance(pods, Mapping) else pods:
        meta = pod["metadata"]
        if meta["namespace"] == own_namespace or not _mounts_images(pod):
            continue
        if pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
            continue
        states = tuple(
            (status.get("restartCount", 0), "waiting" in status.get("state", {})) for status in container_statuses(pod)
        )
        found[(meta["namespace"], meta["name"], meta.get("uid", ""))] = states
    return found


def starting(seen: Activity) -> list[str]:
    """Those of `seen` that may be starting containers now: one waiting (being created, retried or backing
    off), or none started yet. A finished init container starts nothing; a restart shows in its count."""
    return [f"{namespace}/{name}" for (namespace, name, _), states in seen.items()
            if not states or any(waiting for _, waiting in states)]  # fmt: skip


@dataclass
class NodeCounters:
    """A quiet node of the test's node group, and its kubelet's /metrics."""

    kube: Kube
    node: str
    own_namespace: str

    def scrape(self) -> str:
        return self.kube.node_metrics(self.node)

    def _activity(self) -> Activity:
        return activity(self.kube.pods_on_node(self.node), self.own_namespace)

    @contextlib.contextmanager
    def alone(self) -> Iterator[None]:
        """Around the measurement: skip it when another Pod with an image volume started anything meanwhile."""
        before = self._activity()
        yield
        after = self._activity()
        changed = {f"{ns}/{name}" for (ns, name, uid), states in after.items() if before.get((ns, name, uid)) != states}
        if busy := sorted(changed | set(starting(before)) | set(starting(after))):
            pytest.skip(
                f"the kubelet's image volume counters on {self.node} are node-wide, and other Pods with image volumes "
                f"started containers during the measurement ({', '.join(busy)}): it is not this test's alone"
            )


def quiet_node(kube: Kube, candidates: Sequence[str], own_namespace: str, timeout: float = QUIET_TIMEOUT) -> str:
    """A node of `candidates` on which no other Pod with an image volume is starting containers; waits
    (bounded) for the first candidate to become quiet when none is. Skips the test with the reason."""
    try:
        for node in candidates:
            if not starting(activity(kube.pods_on_node(node), own_namespace)):
                return node
        node = candidates[0]
        kube.watch_until(
            "/api/v1/pods",
            field_selector=f"spec.nodeName={node}",
            satisfied=lambda pods: True if not starting(activity(pods, own_namespace)) else None,
            what=f"node {node} to have no other Pod with an image volume starting containers",
            timeout=timeout,
        )
    except ApiException as error:
        pytest.skip(
            f"cannot list the Pods of the node (HTTP {error.status} {error.reason}): the kubelet's image volume "
            "counters are node-wide, and without seeing its other Pods an increase is not this test's alone"
        )
    except WaitTimeout:
        busy = starting(activity(kube.pods_on_node(node), own_namespace))
        pytest.skip(
            f"no node of {', '.join(candidates)} became quiet within {timeout:.0f}s: Pods with image volumes keep "
            f"starting containers on {node} ({', '.join(busy)}), and the kubelet's counters are node-wide"
        )
    return node
