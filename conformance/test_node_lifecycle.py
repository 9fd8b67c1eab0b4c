"""The node's side of an image volume's life: the runtime keeps its image while it is mounted (KEP-4639;
cri-o test/oci_volumes.bats 'OCI image volume mount lifecycle'), KEP-5365 reports the mounted digest,
deleted Pods leave no mount behind, and restarts of the runtime or the kubelet (`disruptive`: clusters
the suite built only) leave running mounts alone."""

import pytest

from conformance.framework.artifacts import EXPECTED_TREES
from conformance.infra.kube import container_status
from conformance.oci import File, ImageSpec


@pytest.mark.slow
@pytest.mark.behaviour("rmi-refused-while-in-use")
def test_rmi_is_refused_while_the_image_is_mounted_and_allowed_after_the_pod_is_gone(
    request, launch, private_push, crictl, expectation, namespace, ivc_session, pod_start_timeout
):
    # Content of its own: image IDs are content digests, and `rmi <id>` of a shared tree (the seed)
    # would remove every repository of that tree, including ones other tests mount right now.
    own = ImageSpec(layers=((File("owner", f"{ivc_session.run_id} {request.node.nodeid}".encode()),),))
    pushed = private_push(own)
    pod = launch("basic", reference=pushed.reference, pull_policy="IfNotPresent")
    on_node = crictl(pod.node)
    image_id = on_node.image_id(pushed.reference)
    assert image_id, f"the runtime does not know {pushed.reference} although a Running Pod mounts it"

    refused = on_node.remove_image(image_id)
    assert refused.returncode != 0, f"crictl rmi removed {pushed.reference} while a Running Pod mounts it"
    assert expectation["message"] in refused.stderr, (
        f"rmi failed, but without {expectation['message']!r}: {refused.stderr.strip()}"
    )
    assert pod.read("/volume/owner").startswith(ivc_session.run_id)

    pod.delete_and_wait_gone(timeout=pod_start_timeout)
    on_node.wait_for_no_containers(namespace, pod.name, timeout=pod_start_timeout)
    removed = on_node.remove_image(image_id)
    assert removed.returncode == 0, f"crictl rmi still refused after the Pod is gone: {removed.stderr.strip()}"
    assert on_node.image_id(pushed.reference) is None, f"{pushed.reference} is still on the node after rmi"


@pytest.mark.behaviour("volume-status-image-ref")
def test_volume_status_reports_the_pulled_digest(launch, private_push, observe):
    """Whether the runtime reports the digest is observed; a reported one must be the pushed digest."""
    pushed = private_push("seed")
    pod = launch("basic", reference=pushed.reference)
    mounts = {m["name"]: m for m in (container_status(pod.raw, "main") or {}).get("volumeMounts", [])}
    image_ref = mounts.get("volume", {}).get("volumeStatus", {}).get("image", {}).get("imageRef")
    observe("volume_status_image_ref", image_ref or "not reported (the runtime fills no CRI ImageSpec.image_ref)")
    if image_ref:
        assert pushed.digest in image_ref, f"volumeStatus imageRef {image_ref!r} does not name {pushed.digest}"


GRACE_SECONDS = 30  # a Pod's deletion must be over within its grace period (containers exit on SIGTERM)


def ids_of(pod):
    """What names this Pod's mounts on its node: the Pod's UID, its containers' and sandbox's IDs."""
    statuses = pod.raw["status"].get("containerStatuses", [])
    containers = [s["containerID"].split("://", 1)[-1] for s in statuses if s.get("containerID")]
    return [pod.raw["metadata"]["uid"], *containers]


@pytest.mark.slow
@pytest.mark.behaviour("deletion-leaves-no-mounts")
def test_deleted_pods_leave_no_image_volume_mount_on_their_node(
    launch, artifacts, capabilities, node_shell, crictl, namespace
):
    """KEP-4639: the runtime manages the mount's lifecycle, 'for example to remove the bind mount on container
    removal'; containerd#14032 left them behind. One Pod mounts the image whole and (where the API takes it)
    by subPath: both kinds of mount must go."""
    sub_path = "dir" if capabilities.api_accepts_image_subpath else None
    pod = launch(
        "two-mounts", reference=artifacts["seed"].reference, second_sub_path=sub_path, grace_seconds=GRACE_SECONDS
    )
    sandbox = crictl(pod.node).sandbox_id(namespace, pod.name)
    held = node_shell(pod.node).mounts_naming(*ids_of(pod), sandbox)
    assert held, f"no mount on {pod.node} names Pod {pod.name}: the check could not see its mounts"
    pod.delete(grace_seconds=GRACE_SECONDS)
    pod.wait_gone(timeout=GRACE_SECONDS)
    left = node_shell(pod.node).wait_no_mounts_naming(*ids_of(pod), sandbox, timeout=30)
    assert not left, f"Pod {pod.name} is gone, but {len(left)} of its mounts stay on {pod.node}: {left[:3]}"


@pytest.mark.disruptive
@pytest.mark.behaviour("runtime-restart")
def test_a_runtime_restart_keeps_running_mounts_and_mounts_the_image_again(launch, private_push, restart_on_node):
    """containerd TestImageVolumeSetupIfContainerdRestarts, through the kubelet: the running container still
    reads its volume, and a new Pod on that node mounts the same image."""
    pushed = private_push("seed")
    pod = launch("basic", reference=pushed.reference, name="before")
    restart_on_node(pod.node, "runtime")
    pod.assert_tree("/volume", EXPECTED_TREES["seed"])
    after = launch("basic", reference=pushed.reference, name="after", node_name=pod.node)
    after.assert_tree("/volume", EXPECTED_TREES["seed"])


@pytest.mark.disruptive
@pytest.mark.behaviour("kubelet-restart")
def test_a_kubelet_restart_leaves_the_pod_alone_and_a_restarted_container_sees_the_same(
    launch, private_push, restart_on_node, pod_start_timeout
):
    """KEP-4639 keeps what the kubelet knows of image volumes across restarts: the running container is not
    touched, and when it restarts afterwards it mounts the same content again."""
    pushed = private_push("seed")
    pod = launch("restartable", reference=pushed.reference)
    before = container_status(pod.raw, "main")
    restart_on_node(pod.node, "kubelet")
    now = container_status(pod.refresh(), "main")
    assert (now["containerID"], now["restartCount"]) == (before["containerID"], before["restartCount"]), (
        f"the kubelet restart replaced or restarted the container: {before['containerID']} "
        f"(restarts {before['restartCount']}) became {now['containerID']} (restarts {now['restartCount']})"
    )
    pod.assert_tree("/volume", EXPECTED_TREES["seed"])
    pod.restart_container(pod_start_timeout)
    pod.assert_tree("/volume", EXPECTED_TREES["seed"])
