"""Pull failures surface on the container that mounts the volume, with the exact reason and event."""

import pytest


@pytest.mark.behaviour("missing-image")
def test_mounted_missing_image_keeps_the_pod_pending(launch, absent_reference, expectation, pull_failure_timeout):
    pod = launch("basic", reference=absent_reference, pull_policy="IfNotPresent", wait=False)
    reasons = expectation["reasons"].split(",")
    seen = pod.wait_waiting_reason(reasons, timeout=pull_failure_timeout)
    assert seen in reasons
    assert pod.phase == "Pending"
    # Events and status travel separately from the kubelet: await the event, bounded.
    pod.wait_for_event("Failed", absent_reference, timeout=pull_failure_timeout)


@pytest.mark.behaviour("missing-image-unused")
def test_unused_missing_image_does_not_block_the_pod(launch, absent_reference):
    pod = launch("unused-volume", reference=absent_reference, pull_policy="IfNotPresent")
    assert pod.phase == "Running"
    assert "volume" not in pod.listdir("/")


@pytest.mark.behaviour("never-pull-absent")
def test_never_with_an_absent_image_is_err_image_never_pull(
    launch, absent_reference, expectation, pull_failure_timeout
):
    pod = launch("basic", reference=absent_reference, pull_policy="Never", wait=False)
    assert pod.wait_waiting_reason([expectation["reason"]], timeout=pull_failure_timeout) == expectation["reason"]
    assert pod.phase == "Pending"


@pytest.mark.slow
@pytest.mark.behaviour("container-restart-resolution")
def test_what_a_restarted_container_sees_after_the_tag_moved(launch, private_push, observe, pod_start_timeout):
    first = private_push("seed", tag="moving")
    pod = launch("restartable", reference=first.reference, pull_policy="Always")
    assert pod.read("/volume/dir/file") == "1"
    private_push("seed-moved", tag="moving")
    pod.restart_container(pod_start_timeout)
    seen = pod.read("/volume/dir/file")
    observe("content_after_restart", {"1": "old (pulled once per Pod)", "moved-1": "new (re-resolved)"}.get(seen, seen))
