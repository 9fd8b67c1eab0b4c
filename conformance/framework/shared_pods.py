"""Running Pods that tests only read, shared by the whole run: one Pod per shape (artifact, manifest,
parameters), in one namespace of the run.

Every Pod start costs the node a sandbox, a network, mounts and containers — on a 2-core machine the
run's main cost — and read-only probes cannot change what they read. The controller starts the
shapes the suite's tests use (`PRESTARTED`) at session start, side by side, and the runtime probe
reads two of them; a shape nobody started yet is started by the first worker that asks. Either
way the outcome is recorded in the run directory, and every other process reads the record.

A Pod that does not start is deleted at once (a Pod the kubelet keeps retrying would keep mounting,
and other tests count mounts) and its failure is recorded, so every test that needs it fails fast
with the same reason. The namespace goes with the run's others at the end.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from kubernetes.client.exceptions import ApiException

from conformance.cluster import api
from conformance.framework.artifacts import PushedArtifact
from conformance.framework.exclusive import MountLock, flocked, run_directory
from conformance.framework.kube import Json, Kube, WaitTimeout, container_statuses, final_failure, is_running
from conformance.framework.manifests import render
from conformance.framework.namespaces import RUN_LABEL, shared_namespace
from conformance.framework.pods import PodUnderTest

# (artifact, manifest) of the shared Pods the suite's tests read; the first two are the runtime probe's.
PRESTARTED = (("seed", "basic"), ("artifact", "basic"), ("layered", "basic"), ("seed", "init-sidecar"))
# For a shared Pod every pull or create error is decided: the suite's own registry serves every
# reference and its shell image runs everywhere, so the error can only be the image volume's. (A
# runtime without image volume support fails CreateContainer with "failed to mkdir \"\"": KEP-4639
# troubleshooting.)
DECIDED_FAILURES = frozenset({"ErrImagePull", "ImagePullBackOff", "CreateContainerError", "RunContainerError"})


def start_failure(pod: Json) -> str | None:
    """Why a shared Pod will not start, once that is decided; None while it may still."""
    if (final := final_failure(pod)) is not None:
        return final
    # Init containers too: where one cannot start, the others wait in PodInitializing for ever.
    for container in container_statuses(pod):
        waiting = container.get("state", {}).get("waiting", {})
        if waiting.get("reason") in DECIDED_FAILURES:
            return f"{waiting['reason']}: {waiting.get('message', '')}"
    return None


@dataclass(frozen=True)
class Started:
    """What became of a shared Pod: its name, and its start latency or why it did not start."""

    name: str
    start_seconds: float | None = None
    error: str | None = None


class SharedPodFailed(AssertionError):
    """The shared Pod a test reads could not be started."""


class SharedPods:
    """One per process; what other processes started it reads from the run directory.

    `mount_lock` is held while this process starts a Pod (node-wide counter tests must not see the
    mount); the controller passes None: at session start no test runs yet.
    """

    def __init__(
        self,
        kube: Kube,
        run_id: str,
        shell_image: str,
        artifacts: Mapping[str, PushedArtifact],
        manifests_dir: Traversable,
        start_timeout: float,
        mount_lock: MountLock | None = None,
        directory: Path | None = None,
    ) -> None:
        self.kube, self.run_id, self.shell_image, self.artifacts = kube, run_id, shell_image, artifacts
        self.manifests_dir, self.start_timeout, self.mount_lock = manifests_dir, start_timeout, mount_lock
        self.namespace = shared_namespace(run_id)
        self.directory = (directory or run_directory(run_id)) / "shared-pods"
        self.directory.mkdir(mode=0o700, exist_ok=True)
        self._known: dict[str, PodUnderTest] = {}

    # -- controller ---------------------------------------------------------------------------
    def start(self, shapes: Iterable[tuple[str, str]] = PRESTARTED) -> dict[tuple[str, str], PodUnderTest]:
        """Create a Pod of every shape without waiting (the caller does more while they start)."""
        self._ensure_namespace()
        return {(artifact, template): self._create(artifact, template, {}) for artifact, template in shapes}

    def settle(self, created: Mapping[tuple[str, str], PodUnderTest]) -> dict[tuple[str, str], Started]:
        """Wait until each started Pod is decided and record it for the run's other processes."""
        outcomes = {shape: self._await(pod) for shape, pod in created.items()}
        for (artifact, template), started in outcomes.items():
            self._record(artifact, template, {}).write_text(json.dumps(asdict(started)))
        return outcomes

    # -- tests ----------------------------------------------------------------------------------
    def get(self, artifact: str, template: str, params: dict[str, Any]) -> tuple[PodUnderTest, bool]:
        """The Running Pod, and whether this call started it. Raises SharedPodFailed."""
        record = self._record(artifact, template, params)
        if str(record) in self._known:
            return self._known[str(record)], False
        created = False
        if not record.exists():
            # Lock order: the mount lock, then the record's (a worker holding a record waits for no one).
            with (
                self.mount_lock.shared() if self.mount_lock else contextlib.nullcontext(),
                flocked(record.with_suffix(".lock")),
            ):
                if not record.exists():
                    self._ensure_namespace()
                    started = self._await(self._create(artifact, template, params))
                    record.write_text(json.dumps(asdict(started)))
                    created = True
        found = Started(**json.loads(record.read_text()))
        if found.error is not None:
            raise SharedPodFailed(f"the shared Pod for {artifact!r} ({template}) did not start: {found.error}")
        pod = PodUnderTest(self.kube, self.namespace, found.name)
        pod.start_seconds = found.start_seconds
        pod.refresh()
        self._known[str(record)] = pod
        return pod, created

    # -- both -----------------------------------------------------------------------------------
    def _record(self, artifact: str, template: str, params: dict[str, Any]) -> Path:
        # The manifests' location is part of the shape: an overridden `manifests_dir` gets Pods of its own.
        key = json.dumps([str(self.manifests_dir), artifact, template, sorted(params.items())])
        return self.directory / hashlib.sha256(key.encode()).hexdigest()[:16]

    def _create(self, artifact: str, template: str, params: dict[str, Any]) -> PodUnderTest:
        base = artifact if template == "basic" else f"{artifact}-{template}"
        suffix = hashlib.sha256(json.dumps(sorted(params.items())).encode()).hexdigest()[:6] if params else ""
        name = re.sub(r"[^a-z0-9-]+", "-", f"{base}-{suffix}".strip("-"))[:63].strip("-")
        body = render(
            template,
            self.manifests_dir,
            name=name,
            shell_image=self.shell_image,
            reference=self.artifacts[artifact].reference,
            **params,
        )
        return PodUnderTest(self.kube, self.namespace, name, self.kube.create_pod(self.namespace, body))

    def _await(self, pod: PodUnderTest) -> Started:
        try:
            pod.wait_until(
                lambda p: is_running(p) or start_failure(p) is not None,
                f"shared Pod {pod.name} to run or fail",
                self.start_timeout,
            )
        except (WaitTimeout, ApiException) as error:
            failure: str | None = str(error) or type(error).__name__
        else:
            failure = start_failure(pod.raw) if not is_running(pod.raw) else None
        if failure is None:
            return Started(pod.name, start_seconds=round(time.monotonic() - pod.created, 3))
        with contextlib.suppress(Exception):  # diagnostics only: the failure itself is already known
            failure = f"{failure}\n{pod.describe()}"
        with contextlib.suppress(Exception):  # the namespace goes at the end anyway
            pod.delete()
        return Started(pod.name, error=failure)

    def _ensure_namespace(self) -> None:
        api.ignoring(  # 409: another process made it first
            409,
            self.kube.create_namespace,
            self.namespace,
            labels={RUN_LABEL: self.run_id},
            annotations={"ivc.conformance/test": "Pods shared by the run's read-only tests"},
        )
        self.kube.wait_for_service_account(self.namespace)
