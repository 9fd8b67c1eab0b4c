"""A Pod under test: what a test body talks to (read files, run shell, wait for states)."""

from __future__ import annotations

import re
import secrets
import shlex
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from conformance.framework.diagnosis import environment_problem, final_failure, pull_refusal, refusal
from conformance.infra.kube import (
    ExecResult,
    Json,
    Kube,
    WaitTimeout,
    container_status,
    is_running,
    waiting_reason,
)

DEFAULT_CONTAINER = "main"


def tree_directories(tree: Iterable[str]) -> dict[str, set[str]]:
    """Each directory of a tree of file paths ("" is its root) → the names it holds."""
    directories: dict[str, set[str]] = {"": set()}
    for path in tree:
        parts = path.split("/")
        for depth, name in enumerate(parts):
            parent = "/".join(parts[:depth])
            directories.setdefault(parent, set()).add(name)
    return directories


@dataclass(frozen=True)
class View:
    """What one exec saw (`PodUnderTest.view`): the scripts' results, file contents, directory entries."""

    results: list[ExecResult]
    files: dict[str, str]
    entries: dict[str, set[str]]


@dataclass
class PodUnderTest:
    kube: Kube
    namespace: str
    name: str
    raw: Json = field(default_factory=dict)
    created: float = field(default_factory=time.monotonic)  # made right after the create call
    start_seconds: float | None = None  # creation → Running as this process saw it (the benchmark's latency)

    def refresh(self) -> Json:
        self.raw = self.kube.read_pod(self.namespace, self.name)
        return self.raw

    # -- waits ----------------------------------------------------------------------------------
    def wait_running(self, timeout: float) -> PodUnderTest:
        """Until Running; a state the Pod will not leave (a mount refusal…) fails at once, not at the timeout."""
        self.raw = self._wait_decided(is_running, f"Pod {self.name} to be Running", timeout)
        self.start_seconds = time.monotonic() - self.created
        return self

    def wait_scheduled(self, timeout: float) -> PodUnderTest:
        """Until the scheduler placed it: a second Pod can be pinned to its node while it still starts."""
        self.raw = self._wait_decided(
            lambda pod: bool(pod["spec"].get("nodeName")), f"Pod {self.name} to be scheduled", timeout
        )
        return self

    def _wait_decided(
        self, wanted: Callable[[Json], bool], what: str, timeout: float, *, running_is_final: bool = False
    ) -> Json:
        """Until `wanted`, or a state that will not change (then fail at once with it)."""

        def final(pod: Json) -> str | None:
            return "the Pod is Running" if running_is_final and is_running(pod) else final_failure(pod)

        pod = self._wait(lambda p: wanted(p) or final(p) is not None, what, timeout)
        if not wanted(pod):
            raise WaitTimeout(
                f"gave up waiting for {what}: {final(pod)}, which will not change\n{self.kube.describe_pod(pod)}"
            )
        return pod

    def wait_until(self, condition: Callable[[Json], bool], what: str, timeout: float) -> PodUnderTest:
        self.raw = self._wait(condition, what, timeout)
        return self

    def _wait(self, condition: Callable[[Json], bool], what: str, timeout: float) -> Json:
        """Every wait on this Pod: bounded; at the deadline, a registry's or cluster's fault that kept the
        Pod from getting there is raised as EnvironmentProblem (the check is blocked), else the timeout."""
        try:
            return self.kube.wait_for_pod(self.namespace, self.name, condition, what=what, timeout=timeout)
        except WaitTimeout:
            pod = self.refresh()
            if (problem := environment_problem(pod, self.events())) is not None:
                raise problem from None
            raise

    def wait_running_or_refused(
        self, timeout: float, *, mount_words: Iterable[str] = (), pulls: bool = False
    ) -> str | None:
        """Until the Pod runs (None) or says why it cannot: a container whose creation or start was refused
        over a mount (`mount_words` name it besides the usual words), and with `pulls` an image volume whose
        pull the runtime refused (not the registry's fault: that blocks the check). Returns what it said."""
        words = tuple(mount_words)

        def said(pod: Json) -> str | None:
            return refusal(pod, also=words) or (pull_refusal(pod) if pulls else None)

        decided = "the Pod to run or to say why it cannot"
        self.wait_until(lambda pod: is_running(pod) or said(pod) is not None, decided, timeout)
        return None if is_running(self.raw) else said(self.raw)

    def wait_waiting_reason(self, reasons: Iterable[str], timeout: float, container: str = DEFAULT_CONTAINER) -> str:
        """Wait until `container` is waiting with one of `reasons`; return the reason seen."""
        wanted = set(reasons)
        what = f"container {container} of Pod {self.name} to wait with reason {' or '.join(sorted(wanted))}"

        def arrived(pod: Json) -> bool:
            return waiting_reason(pod, container) in wanted

        # Running, or another final reason, is as decided as the wanted one: no need to wait it out.
        self.raw = self._wait_decided(arrived, what, timeout, running_is_final=True)
        return waiting_reason(self.raw, container) or ""

    def patch(self, body: Json) -> PodUnderTest:
        self.raw = self.kube.patch_pod(self.namespace, self.name, body)
        return self

    def add_ephemeral_container(self, container: Json, timeout: float) -> PodUnderTest:
        """Add `container` as an ephemeral container (as `kubectl debug` does) and wait until it runs."""
        name = container["name"]
        self.raw = self.kube.add_ephemeral_container(self.namespace, self.name, container)
        self.wait_until(
            lambda pod: "running" in (container_status(pod, name) or {}).get("state", {}),
            f"ephemeral container {name} of Pod {self.name} to run",
            timeout,
        )
        return self

    def restart_container(self, timeout: float, container: str = DEFAULT_CONTAINER) -> PodUnderTest:
        """Make a `restartable` Pod's container exit (it waits for /tmp/exit) and wait until the kubelet
        restarted it and it runs again."""
        before = (container_status(self.refresh(), container) or {}).get("restartCount", 0)
        self.sh("touch /tmp/exit", container)

        def restarted(pod: Json) -> bool:
            status = container_status(pod, container) or {}
            return status.get("restartCount", 0) > before and "running" in status.get("state", {})

        return self.wait_until(restarted, f"container {container} of Pod {self.name} to be restarted and run", timeout)

    def container_state(self, container: str = DEFAULT_CONTAINER) -> Json:
        return (container_status(self.raw, container) or {}).get("state", {})

    @property
    def node(self) -> str:
        """The node the Pod was scheduled to (empty before scheduling)."""
        return str(self.raw.get("spec", {}).get("nodeName", ""))

    @property
    def phase(self) -> str:
        return self.raw.get("status", {}).get("phase", "")

    # -- inside the container -------------------------------------------------------------------
    # Every exec is a round trip through apiserver, kubelet and runtime (a runc exec each): batch them.
    def sh(self, script: str, container: str = DEFAULT_CONTAINER, timeout: float = 60) -> ExecResult:
        return self.kube.exec(self.namespace, self.name, ["/bin/sh", "-c", script], container, timeout)

    def sh_each(
        self, scripts: Sequence[str], container: str = DEFAULT_CONTAINER, timeout: float = 60
    ) -> list[ExecResult]:
        """Each script in turn, in its own subshell, in one exec; a result each, as if run alone."""
        marker = f"ivc-{secrets.token_hex(8)}"  # cannot occur in what a script prints
        batch = "".join(
            f"( {script}\n); printf '\\n{marker} %d\\n' $?; printf '\\n{marker}\\n' >&2\n" for script in scripts
        )
        whole = self.sh(batch, container, timeout)
        # stdout: out₀ \n marker rc₀ \n out₁ …; stderr: err₀ \n marker \n err₁ …
        stdout = re.split(rf"\n{marker} (\d+)\n", whole.stdout)
        stderr = whole.stderr.split(f"\n{marker}\n")
        ran = (len(stdout) - 1) // 2
        assert ran == len(scripts) and len(stderr) > ran, (
            f"exec in {self.name}/{container} ran {ran} of {len(scripts)} scripts "
            f"(exit {whole.returncode}): {whole.output.strip()[-500:]}"
        )
        return [ExecResult(int(stdout[2 * i + 1]), stdout[2 * i], stderr[i]) for i in range(ran)]

    def view(
        self, *scripts: str, files: Iterable[str] = (), dirs: Iterable[str] = (), container: str = DEFAULT_CONTAINER
    ) -> View:
        """In one exec: `scripts` first, then the content of `files` and the entries of `dirs`. A file
        or directory that cannot be read fails the test with the shell's message."""
        files, dirs = list(files), list(dirs)
        commands = [*scripts, *(f"cat {shlex.quote(f)}" for f in files), *(f"ls -A {shlex.quote(d)}" for d in dirs)]
        results = self.sh_each(commands, container)
        for path, result in zip([*files, *dirs], results[len(scripts) :], strict=True):
            assert result.returncode == 0, f"cannot read {path} in {self.name}/{container}: {result.output.strip()}"
        contents = [r.stdout for r in results[len(scripts) : len(scripts) + len(files)]]
        listings = [set(r.stdout.split()) for r in results[len(scripts) + len(files) :]]
        return View(
            results[: len(scripts)], dict(zip(files, contents, strict=True)), dict(zip(dirs, listings, strict=True))
        )

    def read(self, path: str, container: str = DEFAULT_CONTAINER) -> str:
        """File content; fails the test with the shell's message when the file cannot be read."""
        return self.view(files=[path], container=container).files[path]

    def listdir(self, path: str, container: str = DEFAULT_CONTAINER) -> set[str]:
        return self.view(dirs=[path], container=container).entries[path]

    def assert_tree(self, root: str, tree: dict[str, str], container: str = DEFAULT_CONTAINER) -> None:
        """Exactly the tree at `root`, in one exec: every directory holds just its entries (siblings
        absent at every level), every file its content."""
        directories = tree_directories(tree)
        seen = self.view(
            files=[f"{root}/{path}" for path in tree],
            dirs=[f"{root}/{d}".rstrip("/") for d in directories],
            container=container,
        )
        for directory, expected in directories.items():
            path = f"{root}/{directory}".rstrip("/")
            entries = seen.entries[path]
            assert entries == expected, f"{container}:{path}: expected {sorted(expected)}, saw {sorted(entries)}"
        for path, content in tree.items():
            found = seen.files[f"{root}/{path}"]
            assert found == content, f"{container}:{root}/{path}: expected {content!r}, saw {found!r}"

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

    def wait_for_events(self, enough: Callable[[list[Json]], bool], what: str, timeout: float) -> list[Json]:
        """Every event about this Pod, once `enough(events)` holds."""
        return self.kube.wait_for_events(self.namespace, self.name, enough, what=what, timeout=timeout)

    def delete(self, grace_seconds: int = 0) -> None:
        self.kube.delete_pod(self.namespace, self.name, grace_seconds=grace_seconds)

    def wait_gone(self, timeout: float) -> None:
        self.kube.wait_for_pod_gone(self.namespace, self.name, timeout=timeout)

    def delete_and_wait_gone(self, timeout: float, grace_seconds: int = 1) -> None:
        """Delete with a grace period and wait until the object is gone. A grace period of 0 would
        remove the object at once; with one, the kubelet removes it only after it stopped the
        containers and tore down the volumes, so "gone" means the node has let go of the Pod."""
        self.delete(grace_seconds)
        self.wait_gone(timeout)

    def describe(self) -> str:
        return self.kube.describe_pod(self.refresh())
