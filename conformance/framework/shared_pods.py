"""Running Pods that tests only read, shared by the whole run: one Pod per (artifact, manifest,
parameters), whichever xdist worker asks first, in one namespace of the run.

Every Pod start costs the node a sandbox, a network, mounts and containers — on a 2-core machine the
run's main cost — and read-only probes cannot change what they read. The first worker to need a Pod
creates it and records it in the run directory; the others wait on that record's lock and read it.
A Pod that does not start is deleted at once (a Pod the kubelet keeps retrying would keep mounting,
and other tests count mounts) and its failure is recorded, so every test that needs it fails fast
with the first one's reason. The namespace goes with the run's others at the end.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from kubernetes.client.exceptions import ApiException

from conformance.framework.exclusive import MountLock, flocked, run_directory
from conformance.framework.kube import Kube, WaitTimeout
from conformance.framework.manifests import render
from conformance.framework.pods import PodUnderTest
from conformance.framework.session import RUN_LABEL, SuiteSession


class SharedPodFailed(AssertionError):
    """The shared Pod a test reads could not be started (in this test or an earlier one)."""


class SharedPods:
    """One per process; what it knows of other processes' Pods it reads from the run directory."""

    def __init__(
        self,
        kube: Kube,
        suite: SuiteSession,
        manifests_dir: Traversable,
        pod_start_timeout: float,
        mount_lock: MountLock,
        directory: Path | None = None,
    ) -> None:
        self.kube, self.suite, self.mount_lock = kube, suite, mount_lock
        self.manifests_dir, self.pod_start_timeout = manifests_dir, pod_start_timeout
        self.namespace = f"ivc-{suite.run_id}-shared-pods"
        self.directory = (directory or run_directory(suite.run_id)) / "shared-pods"
        self.directory.mkdir(mode=0o700, exist_ok=True)
        self._known: dict[str, PodUnderTest] = {}

    def get(self, artifact: str, template: str, params: dict[str, Any]) -> tuple[PodUnderTest, bool]:
        """The Running Pod, and whether this call started it."""
        key = json.dumps([artifact, template, sorted(params.items())])
        if key in self._known:
            return self._known[key], False
        record = self.directory / hashlib.sha256(key.encode()).hexdigest()[:16]
        created = False
        # Lock order: the mount lock, then the record's (a worker holding a record waits for no one).
        with self.mount_lock.shared(), flocked(record.with_suffix(".lock")):
            if not record.exists():
                record.write_text(json.dumps(self._start(artifact, template, params)))
                created = True
            found = json.loads(record.read_text())
        if "error" in found:
            raise SharedPodFailed(f"the shared Pod for {artifact!r} ({template}) did not start: {found['error']}")
        pod = PodUnderTest(self.kube, self.namespace, found["name"])
        pod.start_seconds = found.get("start_seconds")
        pod.refresh()
        self._known[key] = pod
        return pod, created

    def _start(self, artifact: str, template: str, params: dict[str, Any]) -> dict[str, Any]:
        base = artifact if template == "basic" else f"{artifact}-{template}"
        suffix = hashlib.sha256(json.dumps(sorted(params.items())).encode()).hexdigest()[:6] if params else ""
        name = re.sub(r"[^a-z0-9-]+", "-", f"{base}-{suffix}".strip("-"))[:63].strip("-")
        body = render(
            template,
            self.manifests_dir,
            name=name,
            shell_image=self.suite.shell_image,
            reference=self.suite.artifacts[artifact].reference,
            **params,
        )
        self._ensure_namespace()
        pod = PodUnderTest(self.kube, self.namespace, name, self.kube.create_pod(self.namespace, body))
        try:
            pod.wait_running(self.pod_start_timeout)
        except (WaitTimeout, ApiException) as error:  # recorded for every test that reads this Pod
            with contextlib.suppress(Exception):
                pod.delete()
            return {"name": name, "error": str(error) or type(error).__name__}
        return {"name": name, "start_seconds": pod.start_seconds}

    def _ensure_namespace(self) -> None:
        try:
            self.kube.create_namespace(
                self.namespace,
                labels={RUN_LABEL: self.suite.run_id},
                annotations={"ivc.conformance/test": "Pods shared by the run's read-only tests"},
            )
        except ApiException as error:
            if error.status != 409:  # another worker made it for its own first shared Pod
                raise
        self.kube.wait_for_service_account(self.namespace)
