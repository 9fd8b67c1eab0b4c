"""Behind the API on the node (optional): the runtime keeps an image volume's image while it is
mounted (KEP-4639; cri-o test/oci_volumes.bats 'OCI image volume mount lifecycle'), and KEP-5365
reports the mounted digest in the Pod status."""

import pytest

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
