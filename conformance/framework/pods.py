"""A Pod under test: what a test body talks to (read files, run shell, wait for states)."""

from __future__ import annotations

import shlex
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from conformance.framework.kube import (
    ExecResult,
    Json,
    Kube,
    WaitTimeout,
    final_failure,
    is_running,
    waiting_reason,
)

DEFAULT_CONTAINER = "main"


@dataclass
class PodUnderTest:
    kube: Kube
    namespace: str
    name: str
    raw: Json = field(default_factory=dict)

    def refresh(self) -> Json:
        self.raw = self.kube.read_pod(self.namespace, self.name)
        return self.raw

    # -- waits ----------------------------------------------------------------------------------
    def wait_running(self, timeout: float) -> PodUnderTest:
        """Until Running; a state the Pod will not leave (a mount refusal…) fails at once, not at the timeout."""
        self.raw = self._wait_decided(is_running, f"Pod {self.name} to be Running", timeout)
        return self

    def _wait_decided(
        self, wanted: Callable[[Json], bool], what: str, timeout: float, *, running_is_final: bool = False
    ) -> Json:
        """Until `wanted`, or a state that will not change (then fail at once with it)."""

        def final(pod: Json) -> str | None:
            return "the Pod is Running" if running_is_final and is_running(pod) else final_failure(pod)

        pod = self.kube.wait_for_pod(
            self.namespace, self.name, lambda p: wanted(p) or final(p) is not None, what=what, timeout=timeout
        )
        if not wanted(pod):
            raise WaitTimeout(
                f"gave up waiting for {what}: {final(pod)}, which will not change\n{self.kube.describe_pod(pod)}"
            )
        return pod

    def wait_until(self, condition: Callable[[Json], bool], what: str, timeout: float) -> PodUnderTest:
        self.raw = self.kube.wait_for_pod(self.namespace, self.name, condition, what=what, timeout=timeout)
        return self

    def wait_waiting_reason(self, reasons: Iterable[str], timeout: float, container: str = DEFAULT_CONTAINER) -> str:
        """Wait until `container` is waiting with one of `reasons`; return the reason seen."""
        wanted = set(reasons)
        what = f"container {container} of Pod {self.name} to wait with reason {' or '.join(sorted(wanted))}"

        def arrived(pod: Json) -> bool:
            return waiting_reason(pod, container) in wanted

        # Running, or another final reason, is as decided as the wanted one: no need to wait it out.
        self.raw = self._wait_decided(arrived, what, timeout, running_is_final=True)
        return waiting_reason(self.raw, container) or ""

    def container_state(self, container: str = DEFAULT_CONTAINER) -> Json:
        for cs in self.raw.get("status", {}).get("containerStatuses", []):
            if cs["name"] == container:
                return cs.get("state", {})
        return {}

    @property
    def node(self) -> str:
        """The node the Pod was scheduled to (empty before scheduling)."""
        return str(self.raw.get("spec", {}).get("nodeName", ""))

    @property
    def phase(self) -> str:
        return self.raw.get("status", {}).get("phase", "")

    # -- inside the container -------------------------------------------------------------------
    def sh(self, script: str, container: str = DEFAULT_CONTAINER, timeout: float = 60) -> ExecResult:
        return self.kube.exec(self.namespace, self.name, ["/bin/sh", "-c", script], container, timeout)

    def read(self, path: str, container: str = DEFAULT_CONTAINER) -> str:
        """File content; fails the test with the shell's message when the file cannot be read."""
        result = self.sh(f"cat {shlex.quote(path)}", container)
        assert result.returncode == 0, f"cannot read {path} in {self.name}/{container}: {result.output.strip()}"
        return result.stdout

    def listdir(self, path: str, container: str = DEFAULT_CONTAINER) -> set[str]:
        result = self.sh(f"ls -A {shlex.quote(path)}", container)
        assert result.returncode == 0, f"cannot list {path} in {self.name}/{container}: {result.output.strip()}"
        return set(result.stdout.split())

    def assert_tree(self, root: str, tree: dict[str, str], container: str = DEFAULT_CONTAINER) -> None:
        """Exactly the tree's top-level entries at `root` (siblings absent), each file with its content."""
        expected = {path.split("/", 1)[0] for path in tree}
        entries = self.listdir(root, container)
        assert entries == expected, f"{container}:{root}: expected {sorted(expected)}, saw {sorted(entries)}"
        for path, content in tree.items():
            seen = self.read(f"{root}/{path}", container)
            assert seen == content, f"{container}:{root}/{path}: expected {content!r}, saw {seen!r}"

    def events(self) -> list[Json]:
        return self.kube.events(self.namespace, self.name)

    def event_messages(self, reason: str | None = None) -> list[str]:
        return [e.get("message", "") for e in self.events() if reason is None or e.get("reason") == reason]

    def wait_for_event(self, reason: str, fragment: str, timeout: float) -> str:
        """Wait for an event about this Pod with `reason` whose message contains `fragment`; its message."""
        event = self.kube.wait_for_event(
            self.namespace,
            self.name,
            lambda e: e.get("reason") == reason and fragment in e.get("message", ""),
            what=f"a {reason} event about Pod {self.name} containing {fragment!r}",
            timeout=timeout,
        )
        return event.get("message", "")

    def delete(self) -> None:
        self.kube.delete_pod(self.namespace, self.name)

    def delete_and_wait_gone(self, timeout: float) -> None:
        """Delete with a grace period and wait until the object is gone. A grace period of 0 would
        remove the object at once; with one, the kubelet removes it only after it stopped the
        containers and tore down the volumes, so "gone" means the node has let go of the Pod."""
        self.kube.delete_pod(self.namespace, self.name, grace_seconds=1)
        self.kube.wait_for_pod_gone(self.namespace, self.name, timeout=timeout)

    def describe(self) -> str:
        return self.kube.describe_pod(self.refresh())
