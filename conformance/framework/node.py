"""Behind the API on a node: crictl, for the few behaviours only the runtime can show.

The provider says how to reach a node (ClusterHandle.node_access: this host for the local cluster,
`docker exec <node>` on kind); existing clusters give no node access and the fixture skips there.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from conformance.cluster.contract import NodeAccess
from conformance.infra.kube import ExecResult, Json
from conformance.infra.process import run
from conformance.infra.wait import NotYet, wait_for


@dataclass(frozen=True)
class Crictl:
    access: NodeAccess
    node: str

    def run(self, *args: str, timeout: float = 60) -> ExecResult:
        argv = self.access.on(self.node, self.access.crictl or "crictl", *args)
        done = run(argv, what=f"crictl {' '.join(args[:2])} on {self.node}", timeout=timeout, check=False)
        return ExecResult(done.returncode, done.stdout, done.stderr)

    def image_id(self, reference: str) -> str | None:
        """The runtime's image ID for `reference`, or None when the node does not have it."""
        result = self.run("inspecti", "-o", "json", reference)
        if result.returncode != 0:
            return None
        return json.loads(result.stdout)["status"]["id"]

    def remove_image(self, image_id: str) -> ExecResult:
        return self.run("rmi", image_id)

    def pod_containers(self, namespace: str, pod: str) -> list[Json]:
        """Every container of the Pod the runtime still holds, running or exited."""
        result = self.run(
            "ps",
            "-a",
            "-o",
            "json",
            "--label",
            f"io.kubernetes.pod.namespace={namespace}",
            "--label",
            f"io.kubernetes.pod.name={pod}",
        )
        if result.returncode != 0:
            raise RuntimeError(f"crictl ps failed: {result.output.strip()}")
        return json.loads(result.stdout).get("containers") or []

    def wait_for_no_containers(self, namespace: str, pod: str, timeout: float) -> None:
        """Wait until the kubelet had the runtime remove the Pod's containers (it does so shortly after
        the Pod is gone from the API). CRI has no watch that crictl exposes, so this polls, bounded."""

        def none_left() -> None:
            if left := self.pod_containers(namespace, pod):
                states = ", ".join(f"{c['id'][:13]} {c['metadata']['name']} {c['state']}" for c in left)
                raise NotYet(f"the runtime still holds containers of Pod {namespace}/{pod}: {states}")

        wait_for(f"the runtime to remove the containers of Pod {namespace}/{pod}", none_left, timeout=timeout,
                 interval=0.5)  # fmt: skip
