"""One image in several places: two volumes in a Pod, init containers and sidecars, two Pods."""

import pytest

from conformance.framework.artifacts import EXPECTED_TREES


@pytest.mark.behaviour("multiple-volumes")
@pytest.mark.parametrize("second", ["exec", "seed"], ids=["different-references", "same-reference-twice"])
def test_two_image_volumes_in_one_pod(launch, artifacts, second):
    pod = launch("two-volumes", reference=artifacts["seed"].reference, second_reference=artifacts[second].reference)
    pod.assert_tree("/volume-0", EXPECTED_TREES["seed"])
    pod.assert_tree("/volume-1", EXPECTED_TREES[second])


@pytest.mark.behaviour("init-container")
def test_init_container_sees_the_volume(shared_pod):
    pod = shared_pod("seed", "init-sidecar")
    # What the init container recorded in the emptyDir before it exited.
    recorded = {"init-entries": "dir file", "init-file": "2", "init-dir-file": "1"}
    for name, expected in recorded.items():
        seen = " ".join(pod.read(f"/seen/{name}").split())
        assert seen == expected, f"init container recorded {name} = {seen!r}, expected {expected!r}"


@pytest.mark.behaviour("sidecar-container")
@pytest.mark.parametrize("container", ["sidecar", "main"])
def test_sidecar_and_main_container_see_the_volume(shared_pod, container):
    pod = shared_pod("seed", "init-sidecar")
    pod.assert_tree("/volume", EXPECTED_TREES["seed"], container)


@pytest.mark.slow
@pytest.mark.behaviour("same-image-two-pods")
def test_same_image_in_two_pods_on_one_node(launch, artifacts, pod_start_timeout, pod_delete_timeout):
    reference = artifacts["seed"].reference
    first = launch("basic", reference=reference, name="first", wait=False).wait_scheduled(pod_start_timeout)
    second = launch("basic", reference=reference, name="second", node_name=first.node, wait=False)
    for pod in (first, second):  # starting side by side: one node mounting the image for both at once
        pod.wait_running(pod_start_timeout)
    first.assert_tree("/volume", EXPECTED_TREES["seed"])
    second.assert_tree("/volume", EXPECTED_TREES["seed"])
    # Tearing down the second Pod's mount must not take the first Pod's view with it.
    second.delete_and_wait_gone(pod_delete_timeout)
    first.assert_tree("/volume", EXPECTED_TREES["seed"])


@pytest.mark.behaviour("ephemeral-container")
def test_an_ephemeral_container_sees_the_volume_read_only(
    seed_pod, render_pod, artifacts, expectation, pod_start_timeout
):
    """As `kubectl debug` adds one: an ephemeral container mounting the Pod's image volume (the run's shared
    seed Pod: an added container changes nothing its other readers see). Creating a file on a read-only
    mount fails with EROFS before any permission check."""
    pod = seed_pod
    # The main container's shape (image, command, mount, securityContext), under another name.
    debugger = {**render_pod("basic", reference=artifacts["seed"].reference)["spec"]["containers"][0], "name": "debug"}
    pod.add_ephemeral_container(debugger, pod_start_timeout)
    pod.assert_tree("/volume", EXPECTED_TREES["seed"], container="debug")
    write = pod.sh("echo x > /volume/new-file", container="debug")
    assert write.returncode != 0, f"an ephemeral container wrote into the image volume: {write.output!r}"
    assert expectation["error"] in write.output, f"the write failed, but not with EROFS: {write.output!r}"
