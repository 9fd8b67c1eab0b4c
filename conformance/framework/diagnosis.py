"""Why a Pod is not running: a refusal of its mount (evidence about the cluster under test), or a fault of
the registry or the cluster around it (no verdict on image volumes at all).

One place decides this, for the runtime probe, the shared Pods and every test's waits:

- `refusal(pod)`: the kubelet or runtime refused to create or start a container, and the message
  names a mount. Creation fails with `CreateContainerError`; a runtime that refuses at start shows
  `RunContainerError`, then `CrashLoopBackOff` with the refusal in `lastState.terminated`. Both are
  decided at once: a refused mount is refused the same way on every retry.
- `environment_problem(pod, events)`: at the end of a bounded wait, a cause that is not the behaviour
  under test — a pull the registry or the network kept failing, no node to schedule on, a sandbox the
  node could not create. Raised as `EnvironmentProblem`: the check is *blocked* (the run's verdict is
  INCOMPLETE), never failed, and never blamed on the runtime.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterable, Iterator, Sequence

from kubernetes.client.exceptions import ApiException

from conformance.infra.kube import Json, container_statuses

# Waiting reasons of a container whose creation or start the runtime refused.
REFUSED_AT_CREATE_OR_START = frozenset({"CreateContainerError", "RunContainerError"})
# `lastState.terminated.reason` of a container whose start failed (containerd: StartError; CRI-O:
# ContainerCannotRun, kubernetes v1.36.3 pkg/kubelet/kuberuntime/kuberuntime_container.go).
FAILED_START = frozenset({"StartError", "ContainerCannotRun"})
# A refusal must be about a mount, not any creation error (cri-api ErrImageVolumeMountFailed, runtimes' texts).
# A runtime that ignores CRI Mount.image bind-mounts an empty host path: `failed to mkdir ""` (KEP-4639
# troubleshooting; containerd 2.0), `host path is not set`.
MOUNT_WORDS = re.compile(
    r'mount|subpath|sub path|ImageVolume|image volume|failed to mkdir ""|host path is not set', re.IGNORECASE
)
PULL_REASONS = frozenset({"ErrImagePull", "ImagePullBackOff"})
# A pull error that says the registry or the network failed, not that the runtime cannot use the image.
REGISTRY_FAULT = re.compile(
    r"connection refused|connection reset|i/o timeout|timeout|no such host|network is unreachable|"
    r"TLS handshake|x509|certificate|EOF|\b(?:429|5\d\d)\b|Too Many Requests|Service Unavailable|Bad Gateway|"
    r"Gateway Timeout|Internal Server Error|unauthorized|authentication required|denied|forbidden|"
    r"manifest unknown|not found|deadline exceeded",
    re.IGNORECASE,
)


MESSAGE_LIMIT = 400  # a runtime's pull error repeats itself per attempt: the cause is in its first lines


class EnvironmentProblem(Exception):
    """The registry or the cluster (not the behaviour under test) kept the check from running.

    Not an AssertionError: the run's verdict counts the check as blocked (INCOMPLETE), not as failed.
    """

    def __init__(self, cause: str, message: str) -> None:
        message = message if len(message) <= MESSAGE_LIMIT else message[: MESSAGE_LIMIT - 1] + "…"
        super().__init__(f"{cause}: {message}")
        self.cause = cause  # "registry" | "cluster" | "admission"
        self.message = message


def names_a_mount(message: str, also: Iterable[str] = ()) -> bool:
    """The message is about a mount: the word, the image volume, or one of `also` (a path, a subPath)."""
    return bool(MOUNT_WORDS.search(message)) or any(word and word in message for word in also)


def refusal(pod: Json, containers: Sequence[str] = (), also: Iterable[str] = ()) -> str | None:
    """'container main: RunContainerError: …' when a container's creation or start was refused over a mount;
    None otherwise. `containers` limits the look (default: every container); `also` adds words that name
    the mount (its path, the subPath)."""
    words = tuple(also)
    for status in container_statuses(pod):
        if containers and status["name"] not in containers:
            continue
        waiting = status.get("state", {}).get("waiting", {})
        reason, message = waiting.get("reason", ""), waiting.get("message", "")
        if reason in REFUSED_AT_CREATE_OR_START and names_a_mount(message, words):
            return f"container {status['name']}: {reason}: {message}"
        last = status.get("lastState", {}).get("terminated", {})
        if (
            reason == "CrashLoopBackOff"
            and last.get("reason") in FAILED_START
            and names_a_mount(last.get("message", ""), words)
        ):
            return f"container {status['name']}: RunContainerError ({last['reason']}): {last.get('message', '')}"
    return None


def _pull_failure(pod: Json) -> tuple[str, str] | None:
    for status in container_statuses(pod):
        waiting = status.get("state", {}).get("waiting", {})
        if waiting.get("reason") in PULL_REASONS:
            return status["name"], f"{waiting['reason']}: {waiting.get('message', '')}"
    return None


def _volume_references(pod: Json) -> list[str]:
    return [v["image"]["reference"] for v in pod.get("spec", {}).get("volumes", []) if v.get("image")]


def pull_refusal(pod: Json) -> str | None:
    """'ErrImagePull: …' when an image volume's pull failed with an answer that is not the registry's or the
    network's fault (the runtime reached the image and could not use it); None otherwise."""
    pulled = _pull_failure(pod)
    if pulled is None or environment_problem(pod) is not None:
        return None
    return pulled[1]


def environment_problem(pod: Json, events: Sequence[Json] = ()) -> EnvironmentProblem | None:
    """The registry's or the cluster's fault that kept `pod` from running, or None (then the Pod's own state
    speaks: a refusal, a wrong mount, or a plain timeout)."""
    name = pod.get("metadata", {}).get("name", "?")
    for condition in pod.get("status", {}).get("conditions", []):
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            return EnvironmentProblem(
                "cluster", f"Pod {name} cannot be scheduled: {condition.get('message') or condition.get('reason')}"
            )
    if (pulled := _pull_failure(pod)) is not None:
        container, message = pulled
        volumes = [ref for ref in _volume_references(pod) if ref in message]
        if not volumes:  # the container image (the suite's shell image), not an image volume
            return EnvironmentProblem(
                "registry", f"Pod {name} cannot pull its container image ({container}): {message}"
            )
        if REGISTRY_FAULT.search(message):
            return EnvironmentProblem("registry", f"Pod {name} cannot pull image volume {volumes[0]}: {message}")
        return None  # the runtime could reach the image and still not use it: that is evidence, not a fault
    for event in reversed(list(events)):
        if event.get("reason") in ("FailedCreatePodSandBox", "FailedKillPod", "NetworkNotReady", "FailedMount"):
            return EnvironmentProblem("cluster", f"Pod {name}: {event['reason']}: {event.get('message', '')}")
    return None


# Waiting reasons the kubelet will not leave by retrying: the outcome is decided the moment they show.
# Pull errors (ErrImagePull, ImagePullBackOff) are retried and stay undecided within a bounded wait.
FINAL_WAITING_REASONS = frozenset({"ErrImageNeverPull", "InvalidImageName", "CreateContainerConfigError"})


def final_failure(pod: Json) -> str | None:
    """A state the Pod will not recover from ("container main: CreateContainerError: …"), or None:
    a refused mount, a waiting reason the kubelet does not retry, or a Failed Pod."""
    if (refused := refusal(pod)) is not None:
        return refused
    for status in container_statuses(pod):
        waiting = status.get("state", {}).get("waiting", {})
        if waiting.get("reason") in FINAL_WAITING_REASONS:
            return f"container {status['name']}: {waiting['reason']}: {waiting.get('message', '')}".rstrip(": ")
    status = pod.get("status", {})
    if status.get("phase") == "Failed":
        return f"Pod phase Failed: {status.get('reason', '')} {status.get('message', '')}".strip()
    return None


def admission_refusal(error: ApiException, what: str) -> str:
    """One line for a 403 on a create: which admission refused `what`, and what to allow."""
    try:
        message = json.loads(error.body or "{}").get("message", "") or str(error.reason)
    except ValueError:
        message = str(error.body or error.reason)
    if match := re.search(r'violates PodSecurity "([^"]+)": (.*)', message):
        return (
            f"Pod Security admission ({match[1]}) refused {what}: {match[2]}; the suite labels its namespaces "
            "(ivc-*) pod-security.kubernetes.io/enforce with the level its Pods are shaped for: allow those labels"
        )
    if match := re.search(r'admission webhook "([^"]+)" denied the request: (.*)', message):
        return f"admission webhook {match[1]} refused {what}: {match[2]}; exempt the suite's namespaces (ivc-*)"
    if match := re.search(r"ValidatingAdmissionPolicy '([^']+)'.*?denied request: (.*)", message):
        return f"ValidatingAdmissionPolicy {match[1]} refused {what}: {match[2]}; exempt the suite's namespaces (ivc-*)"
    if "cannot create resource" in message:
        return f"RBAC refused {what}: {message}; the suite needs to create namespaces, Pods, Secrets and Leases"
    return f"the apiserver refused {what} (HTTP 403): {message}"


# An admission policy's denial comes as 403, or as 422 where the policy says "Invalid" (the default reason
# of a ValidatingAdmissionPolicy validation); a 422 from the API's own validation names no admission.
ADMISSION_422 = re.compile(r"ValidatingAdmissionPolicy|admission webhook")


@contextlib.contextmanager
def admitted(what: str) -> Iterator[None]:
    """A create that admission (Pod Security, a policy, a webhook) or RBAC refuses blocks the check with one
    line instead of failing it."""
    try:
        yield
    except ApiException as error:
        if error.status == 403 or (error.status == 422 and ADMISSION_422.search(str(error.body or ""))):
            raise EnvironmentProblem("admission", admission_refusal(error, what)) from None
        raise
