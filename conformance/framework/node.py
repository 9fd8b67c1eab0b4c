"""Behind the API on a node: crictl, the mount table, and restarts of the kubelet or the runtime, for the
behaviours only the node can show.

The provider says how to reach a node (ClusterHandle.node_access: this host for the local cluster,
`docker exec <node>` on kind, the user's --node-command on an existing cluster); without it the table
marks what needs it not applicable.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from conformance.cluster.contract import NodeAccess
from conformance.infra.kube import ExecResult, Json
from conformance.infra.process import run
from conformance.infra.wait import NotYet, WaitTimeout, wait_for


@dataclass(frozen=True)
class Node:
    """One node as the provider lets the suite reach it."""

    access: NodeAccess
    name: str

    def run(self, *argv: str, what: str, timeout: float = 60) -> ExecResult:
        done = run(self.access.on(self.name, *argv), what=f"{what} on {self.name}", timeout=timeout, check=False)
        return ExecResult(done.returncode, done.stdout, done.stderr)

    def mounts_naming(self, *needles: str) -> list[str]:
        """The node's mount table entries (mountinfo lines) whose mount point or source names one of `needles`."""
        table = self.run("cat", "/proc/self/mountinfo", what="read the mount table")
        if table.returncode != 0:
            raise RuntimeError(f"cannot read the mount table of {self.name}: {table.output.strip()}")
        return [line for line in table.stdout.splitlines() if any(needle in line for needle in needles)]

    def wait_no_mounts_naming(self, *needles: str, timeout: float) -> list[str]:
        """Until no mount on the node names one of `needles` (the runtime unmounts after the Pod is gone);
        the entries still there at the deadline, else []. The mount table has no watch: this polls, bounded."""
        left: list[str] = []

        def none_left() -> None:
            left[:] = self.mounts_naming(*needles)
            if left:
                raise NotYet(f"{len(left)} mounts still name them")

        try:
            wait_for(f"the mounts naming {', '.join(n[:13] for n in needles)} to go from {self.name}", none_left,
                     timeout=timeout, interval=0.5)  # fmt: skip
        except WaitTimeout:
            return left
        return []

    def restart(self, component: str, timeout: float) -> None:
        """Restart the kubelet or the runtime on this node with the provider's command, which returns once it
        serves again and leaves running containers alone."""
        done = self.run(*self.access.restart[component], what=f"restart the {component}", timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"restarting the {component} on {self.name} failed: {done.output.strip()[-500:]}")


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

    def sandbox_id(self, namespace: str, pod: str) -> str:
        """The ID of the Pod's sandbox on this node (the runtime names its per-sandbox mounts by it)."""
        result = self.run("pods", "-q", "--namespace", namespace, "--name", f"^{pod}$")
        ids = result.stdout.split()
        if result.returncode != 0 or len(ids) != 1:
            raise RuntimeError(
                f"crictl pods found {ids or 'no'} sandbox for {namespace}/{pod}: {result.output.strip()}"
            )
        return ids[0]

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
