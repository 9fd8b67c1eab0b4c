"""What a run creates in the cluster, and how leftovers of dead runs are found: by liveness, not age.

Every namespace of a run carries `RUN_LABEL=<run id>` and the Pod Security labels its Pods need. The
run's shared namespace holds a `Lease` (coordination.k8s.io) that the run's controller renews every
`RENEW_SECONDS`. Any run sweeps, at start and then with every renewal, the namespaces of runs whose
lease ran out: a run killed with SIGKILL (no cleanup at all) is gone within about a minute and a half
while another run is active, whatever its age. A lease is judged on this process's own clock (it
must stay unchanged for `LEASE_SECONDS` while watched), so clock skew between machines cannot kill a
live run; a lease whose renew time is far in the past by the writer's clock is dead at once.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

from conformance.framework.manifests import PodSecurity
from conformance.infra.kube import Json, Kube

RUN_LABEL = "ivc.conformance/run"  # value: the run id; the sweep deletes by it
LEASE_NAME = "ivc-run"
# Renewed every 5 s, dead after 30 s unchanged: six missed renewals, so a busy apiserver cannot kill a live
# run, and a killed one is gone within about 40 s while any other run is active.
LEASE_SECONDS = 30
RENEW_SECONDS = 5
# A run's namespaces exist a moment before its lease: without a lease, this old means dead.
NO_LEASE_GRACE_SECONDS = 60
# Clocks of two machines may differ this much: a renew time older than the lease's duration plus this (by
# the writer's clock) is dead at once; a younger one must stay unchanged, on this process's clock.
CLOCK_SKEW_SECONDS = 60
POD_SECURITY = "pod-security.kubernetes.io"


def test_namespace(run_id: str, nodeid: str) -> str:
    """A test's own namespace: readable (the test's name) and unique (a digest of its node id)."""
    test = re.sub(r"[^a-z0-9]+", "-", nodeid.rsplit("::", 1)[-1].lower()).strip("-")[:30].strip("-")
    digest = hashlib.sha256(nodeid.encode()).hexdigest()[:6]
    return f"ivc-{run_id}-{test}-{digest}"


def shared_namespace(run_id: str) -> str:
    """The run's shared Pods (shared_pods.py), the runtime probe's among them, and the run's lease."""
    return f"ivc-{run_id}-shared-pods"


def pod_security_labels(level: PodSecurity) -> dict[str, str]:
    """Enforce (and warn about) exactly the level the namespace's Pods are shaped for (manifests.secured)."""
    return {
        f"{POD_SECURITY}/enforce": level.value,
        f"{POD_SECURITY}/enforce-version": "latest",
        f"{POD_SECURITY}/warn": level.value,
        f"{POD_SECURITY}/warn-version": "latest",
    }


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _age(timestamp: str) -> float:
    return (datetime.now(UTC) - datetime.fromisoformat(timestamp.replace("Z", "+00:00"))).total_seconds()


@dataclass
class _Watched:
    renew_time: str
    since: float  # this process's monotonic clock when renew_time was first seen


class RunSweeper:
    """Deletes the namespaces of dead runs. Keeps what it saw of other runs' leases between calls."""

    def __init__(self, kube: Kube, own_run: str) -> None:
        self.kube, self.own_run = kube, own_run
        self.watched: dict[str, _Watched] = {}

    def sweep(self) -> list[str]:
        """One pass; returns the run ids found dead (their namespaces are being deleted)."""
        by_run: dict[str, list[Json]] = {}
        for item in self.kube.list_namespaces(RUN_LABEL):
            run = item["metadata"]["labels"][RUN_LABEL]
            if run != self.own_run and item["status"].get("phase") != "Terminating":
                by_run.setdefault(run, []).append(item)
        dead = [run for run, items in by_run.items() if self._dead(run, items)]
        names = [item["metadata"]["name"] for run in dead for item in by_run[run]]
        with ThreadPoolExecutor(max_workers=8) as pool:  # one round trip each: overlap them
            list(pool.map(self.kube.delete_namespace, names))
        return dead

    def _dead(self, run: str, items: list[Json]) -> bool:
        lease = self.kube.read_lease(shared_namespace(run), LEASE_NAME)
        if lease is None:
            oldest = max(_age(item["metadata"]["creationTimestamp"]) for item in items)
            return oldest > NO_LEASE_GRACE_SECONDS
        renew_time = lease["spec"].get("renewTime") or lease["spec"].get("acquireTime") or ""
        duration = lease["spec"].get("leaseDurationSeconds") or LEASE_SECONDS
        if not renew_time or _age(renew_time) > duration + CLOCK_SKEW_SECONDS:
            return True
        seen = self.watched.get(run)
        if seen is None or seen.renew_time != renew_time:
            self.watched[run] = _Watched(renew_time, time.monotonic())
            return False
        return time.monotonic() - seen.since > duration


class RunLease:
    """The controller's proof of life: created in the run's shared namespace, renewed in a daemon thread
    that also sweeps dead runs. `stop()` ends both (the namespaces then go with the run's own sweep)."""

    def __init__(self, kube: Kube, run_id: str, on_problem: Callable[[str], None]) -> None:
        self.kube, self.run_id, self.on_problem = kube, run_id, on_problem
        self.sweeper = RunSweeper(kube, run_id)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> list[str]:
        """Create the lease, sweep once, then keep renewing and sweeping; returns the runs swept now."""
        holder = f"{socket.gethostname()}/{os.getpid()}"
        now = _now()
        self.kube.create_lease(shared_namespace(self.run_id), LEASE_NAME, holder, LEASE_SECONDS, now)
        dead = self._sweep()
        self._thread = threading.Thread(target=self._renew_loop, name=f"ivc-lease-{self.run_id}", daemon=True)
        self._thread.start()
        return dead

    def _sweep(self) -> list[str]:
        try:
            return self.sweeper.sweep()
        except Exception as error:  # noqa: BLE001 - a sweep that cannot run must not end the run
            self.on_problem(f"could not sweep the namespaces of dead runs: {type(error).__name__}: {error}")
            return []

    def _renew_loop(self) -> None:
        while not self._stop.wait(RENEW_SECONDS):
            try:
                self.kube.renew_lease(shared_namespace(self.run_id), LEASE_NAME, _now())
            except Exception as error:  # noqa: BLE001 - reported; the next renewal may succeed
                self.on_problem(f"could not renew the run's lease: {type(error).__name__}: {error}")
            if dead := self._sweep():
                self.on_problem(f"deleted the namespaces of {len(dead)} dead run(s): {', '.join(sorted(dead))}")

    def stop(self) -> None:
        """Stop renewing, after one last sweep (it catches what died while this run was watching)."""
        self._stop.set()
        if self._thread is not None:
            with contextlib.suppress(RuntimeError):
                self._thread.join(timeout=RENEW_SECONDS + 5)
        if dead := self._sweep():
            self.on_problem(f"deleted the namespaces of {len(dead)} dead run(s): {', '.join(sorted(dead))}")


def delete_run_namespaces(kube: Kube, run_id: str) -> None:
    """The run's own namespaces, without waiting for the namespace controller (tests leave theirs to this)."""
    names = [item["metadata"]["name"] for item in kube.list_namespaces(f"{RUN_LABEL}={run_id}")]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(kube.delete_namespace, names))
