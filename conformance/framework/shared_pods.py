"""Running Pods that tests only read, shared by the whole run: one Pod per shape (artifact, manifest,
parameters, node group), in one namespace of the run.

Every Pod start costs the node a sandbox, a network, mounts and containers — on a 2-core machine the
run's main cost — and read-only probes cannot change what they read. The controller starts the
shapes the suite's tests use (`PRESTARTED`, once per node group) at session start, side by side, and
the runtime probe reads three of them; a shape nobody started yet is started by the first worker that
asks. Either way the outcome is recorded in the run directory (written atomically, read under the
record's lock), and every other process reads the record.

A Pod that does not start is deleted at once (a Pod the kubelet keeps retrying would keep mounting,
and other tests count mounts) and its outcome is recorded, so every test that needs it ends at once
with the same reason: a failure when the cluster refused the mount, blocked (`EnvironmentProblem`)
when the registry or the cluster kept it from starting. The namespace goes with the run's others.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from kubernetes.client.exceptions import ApiException

from conformance.framework.artifacts import PushedArtifact
from conformance.framework.diagnosis import EnvironmentProblem, admitted, final_failure, refusal
from conformance.framework.manifests import PodSecurity, pinned, render, secured
from conformance.framework.namespaces import RUN_LABEL, pod_security_labels, shared_namespace
from conformance.framework.pods import PodUnderTest
from conformance.framework.run_directory import flocked, run_directory
from conformance.framework.run_locks import RunLock
from conformance.infra.files import write_atomic
from conformance.infra.kube import Kube, WaitTimeout, is_running

# Shared Pods run as root: tests write to them to see the read-only mount refuse (Pod Security baseline).
SHARED_POD_SECURITY = PodSecurity.BASELINE


@dataclass(frozen=True)
class Shape:
    """One shared Pod: a catalog artifact at /volume of a manifest, with parameters, on a node group."""

    artifact: str
    template: str = "basic"
    params: tuple[tuple[str, Any], ...] = ()
    group: str | None = None  # a node group id when the cluster has several (the Pod is pinned there)

    def on(self, group: str | None) -> Shape:
        return Shape(self.artifact, self.template, self.params, group)

    def key(self, manifests_dir: Traversable) -> str:
        # The manifests' location is part of the shape: an overridden `manifests_dir` gets Pods of its own.
        raw = json.dumps([str(manifests_dir), self.artifact, self.template, list(self.params), self.group])
        return hashlib.sha256(raw.encode()).hexdigest()[:16]

    def pod_name(self) -> str:
        base = self.artifact if self.template == "basic" else f"{self.artifact}-{self.template}"
        suffix = hashlib.sha256(json.dumps([list(self.params), self.group]).encode()).hexdigest()[:6]
        name = f"{base}-{suffix}" if self.params or self.group else base
        return re.sub(r"[^a-z0-9-]+", "-", name)[:63].strip("-")


def shape(artifact: str, template: str = "basic", **params: Any) -> Shape:
    return Shape(artifact, template, tuple(sorted(params.items())))


# The shapes the suite's tests read (started per node group at session start); the first three are the probe's.
SEED, ARTIFACT, SEED_SUBPATH = shape("seed"), shape("artifact"), shape("seed", sub_path="dir")
PRESTARTED = (SEED, ARTIFACT, SEED_SUBPATH, shape("layered"), shape("seed", "init-sidecar"))


@dataclass(frozen=True)
class Started:
    """What became of a shared Pod: its name, and its start latency or why it did not start."""

    name: str
    start_seconds: float | None = None
    error: str | None = None  # the cluster's answer: a refused mount, a state it will not leave, a timeout
    refused: bool = False  # `error` is a refused mount (diagnosis.refusal): evidence about image volumes
    blocked: str | None = None  # "registry: …" / "cluster: …": kept from starting by what is not under test


class SharedPodFailed(AssertionError):
    """The shared Pod a test reads could not be started (the cluster's answer)."""


class SharedPods:
    """One per process; what other processes started it reads from the run directory.

    `mount_lock` is held while this process starts a Pod (node-wide counter tests must not see the
    mount); the controller passes None: at session start no test runs yet. `group_nodes` maps a node
    group id to its nodes when the cluster has several groups (each shape's Pod is pinned to its group).
    """

    def __init__(
        self,
        kube: Kube,
        run_id: str,
        shell_image: str,
        artifacts: Mapping[str, PushedArtifact],
        manifests_dir: Traversable,
        start_timeout: float,
        mount_lock: RunLock | None = None,
        directory: Path | None = None,
        group_nodes: Mapping[str, tuple[str, ...]] | None = None,
    ) -> None:
        self.kube, self.run_id, self.shell_image, self.artifacts = kube, run_id, shell_image, artifacts
        self.manifests_dir, self.start_timeout, self.mount_lock = manifests_dir, start_timeout, mount_lock
        self.group_nodes = dict(group_nodes or {})
        self.namespace = shared_namespace(run_id)
        self.directory = (directory or run_directory(run_id)) / "shared-pods"
        self.directory.mkdir(mode=0o700, exist_ok=True)
        self._known: dict[str, PodUnderTest] = {}

    # -- controller ---------------------------------------------------------------------------
    def start(self, shapes: Iterable[Shape]) -> dict[Shape, PodUnderTest]:
        """Create a Pod of every shape without waiting (the caller does more while they start)."""
        self.ensure_namespace()
        return {each: self._create(each) for each in shapes}

    def settle(self, created: Mapping[Shape, PodUnderTest]) -> dict[Shape, Started]:
        """Wait until each started Pod is decided and record it for the run's other processes. They started
        side by side: one deadline for all of them."""
        deadline = time.monotonic() + self.start_timeout
        outcomes = {each: self._await(pod, max(1.0, deadline - time.monotonic())) for each, pod in created.items()}
        for each, started in outcomes.items():
            write_atomic(self._record(each), json.dumps(asdict(started)), mode=0o600)
        return outcomes

    # -- tests ----------------------------------------------------------------------------------
    def get(self, wanted: Shape) -> tuple[PodUnderTest, bool]:
        """The Running Pod, and whether this call started it. Raises SharedPodFailed (the cluster refused
        it) or EnvironmentProblem (the registry or the cluster kept it from starting)."""
        record = self._record(wanted)
        if (known := self._known.get(str(record))) is not None:
            return known, False
        found, created = self._read(record), False
        if found is None:
            # Lock order: the mount lock, then the record's (a worker holding a record waits for no one).
            with (
                self.mount_lock.shared() if self.mount_lock else contextlib.nullcontext(),
                flocked(record.with_suffix(".lock")),
            ):
                if not record.exists():
                    self.ensure_namespace()
                    started = self._await(self._create(wanted), self.start_timeout)
                    write_atomic(record, json.dumps(asdict(started)), mode=0o600)
                    created = True
                found = Started(**json.loads(record.read_text()))
        what = (
            f"the shared Pod for {wanted.artifact!r} ({wanted.template}{', ' + wanted.group if wanted.group else ''})"
        )
        if found.blocked is not None:
            cause, _, message = found.blocked.partition(": ")
            raise EnvironmentProblem(cause, f"{what} did not start: {message}")
        if found.error is not None:
            raise SharedPodFailed(f"{what} did not start: {found.error}")
        pod = PodUnderTest(self.kube, self.namespace, found.name)
        pod.start_seconds = found.start_seconds
        pod.refresh()
        self._known[str(record)] = pod
        return pod, created

    def _read(self, record: Path) -> Started | None:
        with flocked(record.with_suffix(".lock")):
            return Started(**json.loads(record.read_text())) if record.exists() else None

    # -- both -----------------------------------------------------------------------------------
    def _record(self, each: Shape) -> Path:
        return self.directory / each.key(self.manifests_dir)

    def _create(self, each: Shape) -> PodUnderTest:
        name = each.pod_name()
        body = render(
            each.template,
            self.manifests_dir,
            name=name,
            shell_image=self.shell_image,
            reference=self.artifacts[each.artifact].reference,
            **dict(each.params),
        )
        secured(body, SHARED_POD_SECURITY)
        if each.group is not None and each.group in self.group_nodes:
            pinned(body, self.group_nodes[each.group])
        with admitted(f"shared Pod {self.namespace}/{name}"):
            return PodUnderTest(self.kube, self.namespace, name, self.kube.create_pod(self.namespace, body))

    def _await(self, pod: PodUnderTest, timeout: float) -> Started:
        try:
            pod.wait_until(
                lambda p: is_running(p) or final_failure(p) is not None,
                f"shared Pod {pod.name} to run or fail",
                timeout,
            )
        except EnvironmentProblem as problem:
            return self._abandon(pod, Started(pod.name, blocked=str(problem)))
        except (WaitTimeout, ApiException) as error:
            return self._abandon(pod, Started(pod.name, error=str(error) or type(error).__name__))
        if (failure := final_failure(pod.raw)) is not None and not is_running(pod.raw):
            return self._abandon(pod, Started(pod.name, error=failure, refused=refusal(pod.raw) is not None))
        return Started(pod.name, start_seconds=round(time.monotonic() - pod.created, 3))

    def _abandon(self, pod: PodUnderTest, started: Started) -> Started:
        """Delete a Pod that did not start (retries would keep mounting); keep what it showed."""
        description = ""
        with contextlib.suppress(Exception):  # diagnostics only: the outcome itself is already known
            description = pod.describe()
        with contextlib.suppress(Exception):  # the namespace goes at the end anyway
            pod.delete()
        if started.error is not None and description:
            return replace(started, error=f"{started.error}\n{description}")
        return started

    def ensure_namespace(self) -> None:
        ensure_shared_namespace(self.kube, self.run_id)


def ensure_shared_namespace(kube: Kube, run_id: str) -> None:
    """The run's shared namespace (its Pods and its lease), labelled for the shared Pods' Pod Security level."""
    namespace = shared_namespace(run_id)
    with admitted(f"namespace {namespace}"):
        kube.ensure_namespace(
            namespace,
            labels={RUN_LABEL: run_id, **pod_security_labels(SHARED_POD_SECURITY)},
            annotations={"ivc.conformance/test": "Pods shared by the run's read-only tests, and the run's lease"},
        )
