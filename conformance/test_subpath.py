"""subPath and subPathExpr: exactly the subtree, siblings absent (a root mount is the classic defect).

A runtime may refuse a subPath it cannot mount, at container creation (`CreateContainerError`) or at
start (`RunContainerError`), as long as the message names the mount; what no runtime may do is mount
something else silently. When the image root shows up instead of the subtree, the failure says
"subPath ignored" (the symptom the table's known defects name).
"""

import pytest
from kubernetes.client.exceptions import ApiException

from conformance.framework.artifacts import EXPECTED_TREES, INSIDE_IMAGE, SYMLINK_ESCAPES
from conformance.infra.kube import is_running

# What subPath "dir" of the seed tree must show: dir/'s content, and nothing of the image root.
DIR_SUBTREE = {"file": "1"}
SEED_ROOT = set(EXPECTED_TREES["seed"]) | {"dir"}


def assert_subtree(pod, root="/volume"):
    entries = pod.listdir(root)
    assert not {"dir", "file"} <= entries, (
        f"subPath ignored: {root} shows the image root {sorted(entries)} instead of subPath dir's {sorted(DIR_SUBTREE)}"
    )
    pod.assert_tree(root, DIR_SUBTREE)


@pytest.mark.behaviour("subpath-directory")
def test_directory_subpath_shows_only_that_directory(shared_pod):
    assert_subtree(shared_pod("seed", sub_path="dir"))  # the runtime probe's own Pod


@pytest.mark.behaviour("subpath-file")
def test_file_subpath_is_mounted_exactly_or_refused(launch, artifacts, observe, pod_start_timeout):
    """Runtimes may refuse a file subPath; mounting anything but that file would be a silent lie."""
    mount = "/mounted-file"
    pod = launch("basic", reference=artifacts["seed"].reference, sub_path="dir/file", mount_path=mount, wait=False)
    refused = pod.wait_running_or_refused(pod_start_timeout, mount_words=("dir/file", mount))
    if refused is not None:
        observe("file_subpath", f"refused: {refused[:200]}")
        return
    observe("file_subpath", "mounted")
    kind = pod.sh(f"test -d {mount} && echo directory || echo file").stdout.strip()
    assert kind == "file", f"subPath ignored: a directory is mounted at {mount}, not the file dir/file"
    assert pod.read(mount) == "1", "a file subPath must mount exactly that file"


@pytest.mark.behaviour("subpath-expr")
def test_subpath_expr_is_expanded_from_the_environment(launch, artifacts):
    pod = launch("basic", reference=artifacts["seed"].reference, sub_path_expr="$(VOLUME_SUBDIR)", env_value="dir")
    assert_subtree(pod)


@pytest.mark.behaviour("subpath-missing")
def test_missing_subpath_fails_container_creation(launch, artifacts, expectation, pod_start_timeout):
    pod = launch("basic", reference=artifacts["seed"].reference, sub_path="does-not-exist", wait=False)
    pod.wait_running_or_refused(pod_start_timeout, mount_words=("does-not-exist",))
    assert not is_running(pod.raw), "subPath ignored: the Pod runs although its subPath does-not-exist is missing"
    waiting = pod.container_state()["waiting"]
    assert waiting["reason"] == expectation["reason"], f"refused with {waiting['reason']}: {waiting.get('message')}"
    assert expectation["message"] in waiting.get("message", ""), (
        f"waiting message lacks {expectation['message']}: {waiting.get('message')!r}"
    )
    assert pod.phase == "Pending"


@pytest.mark.behaviour("subpath-rejected-by-api")
@pytest.mark.parametrize("field", ["sub_path", "sub_path_expr"])
def test_subpath_is_rejected_by_the_api(kube, namespace, render_pod, artifacts, expectation, field):
    body = render_pod("basic", reference=artifacts["seed"].reference, **{field: "dir"})
    with pytest.raises(ApiException) as raised:
        kube.create_pod(namespace, body)
    assert raised.value.status == 422
    assert expectation["message"] in raised.value.body


@pytest.mark.behaviour("subpath-symlink-escape")
def test_a_symlink_subpath_never_leaves_the_image(launch, artifacts, observe, pod_start_timeout):
    """subPaths `escape-absolute` and `escape-relative` are symlinks to /etc (absolute, and by `../`), mounted
    side by side in one Pod: refused, or each resolved inside the image (its own etc/), never the node's /etc."""
    links = [f"escape-{form}" for form in sorted(SYMLINK_ESCAPES)]
    pod = launch(
        "two-mounts",
        reference=artifacts["symlink-escape"].reference,
        sub_path=links[0],
        second_sub_path=links[1],
        wait=False,
    )
    refused = pod.wait_running_or_refused(pod_start_timeout, mount_words=(*links, "escapes"))
    if refused is not None:
        observe("symlink_escapes", f"refused: {refused[:200]}")
        return
    for index, link in enumerate(links):
        root = f"/volume-{index}"
        entries = pod.listdir(root)
        observe(f"symlink_{link}", f"mounted, {root} shows {sorted(entries)[:8]}")
        assert not set(links) <= entries, (
            f"subPath ignored: {root} shows the image root {sorted(entries)} instead of where {link} points"
        )
        assert entries == set(INSIDE_IMAGE), (
            f"subPath {link} left the image: {root} shows {sorted(entries)[:12]}, not the image's own etc/ "
            f"({sorted(INSIDE_IMAGE)})"
        )
        pod.assert_tree(root, INSIDE_IMAGE)


@pytest.mark.behaviour("subpath-failure-leaves-image-mountable")
def test_after_a_refused_subpath_the_same_image_still_mounts_on_that_node(launch, private_push, pod_start_timeout):
    """containerd#14143: the failure path of a missing subPath leaked the image's mount, and the next Pod on
    that node could not mount the image. The image is the test's own, so nothing else mounts it meanwhile."""
    pushed = private_push("seed")
    failed = launch("basic", reference=pushed.reference, sub_path="does-not-exist", name="refused", wait=False)
    failed.wait_running_or_refused(pod_start_timeout, mount_words=("does-not-exist",))
    assert not is_running(failed.raw), "subPath ignored: the Pod runs although its subPath does-not-exist is missing"
    after = launch("basic", reference=pushed.reference, name="after", node_name=failed.node)
    after.assert_tree("/volume", EXPECTED_TREES["seed"])
