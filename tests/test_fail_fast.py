"""Which Pod states end a wait at once (they will not change) and which keep their bounded wait."""

import pytest

from conformance.framework.kube import final_failure


def pod(reason: str, message: str = "", phase: str = "Pending") -> dict:
    waiting = {"reason": reason, "message": message}
    return {"status": {"phase": phase, "containerStatuses": [{"name": "main", "state": {"waiting": waiting}}]}}


@pytest.mark.parametrize(
    ("reason", "message"),
    [
        ("ErrImageNeverPull", 'Container image "x" is not present with pull policy of Never'),
        ("InvalidImageName", 'Failed to apply default image tag "UPPER"'),
        ("CreateContainerConfigError", 'secret "missing" not found'),
        ("CreateContainerError", "failed to mount image volume: ImageVolumeMountFailed: subpath not found"),
    ],
)
def test_a_state_that_will_not_change_ends_the_wait(reason, message):
    assert final_failure(pod(reason, message)) == f"container main: {reason}: {message}"


@pytest.mark.parametrize(
    ("reason", "message"),
    [
        ("ErrImagePull", "unauthorized"),  # retried by the kubelet with backoff
        ("ImagePullBackOff", "Back-off pulling image"),
        ("ContainerCreating", ""),
        ("CreateContainerError", "context deadline exceeded"),  # transient: the kubelet retries
    ],
)
def test_retried_states_keep_their_bounded_wait(reason, message):
    assert final_failure(pod(reason, message)) is None


def test_a_failed_pod_is_final():
    failed = {"status": {"phase": "Failed", "reason": "Evicted", "message": "disk pressure"}}
    assert final_failure(failed) == "Pod phase Failed: Evicted disk pressure"
