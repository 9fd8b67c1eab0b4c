"""subPath and subPathExpr: exactly the subtree, siblings absent (a root mount is the classic defect).

A runtime may refuse a subPath it cannot mount, at container creation (`CreateContainerError`) or at
start (`RunContainerError`), as long as the message names the mount; what no runtime may do is mount
something else silently. When the image root shows up instead of the subtree, the failure says
"subPath ignored" (the symptom the table's known defects name).
"""

import pytest
from kubernetes.client.exceptions import ApiException

from conformance.framework.artifacts import EXPECTED_TREES
from conformance.framework.diagnosis import refusal
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
    pod.wait_until(
        lambda p: is_running(p) or refusal(p, also=("dir/file", mount)) is not None,
        what="the container to run, or its file subPath to be refused naming the mount",
        timeout=pod_start_timeout,
    )
    if not is_running(pod.raw):
        observe("file_subpath", f"refused: {refusal(pod.raw, also=('dir/file', mount))[:200]}")
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
    pod.wait_until(
        lambda p: is_running(p) or refusal(p, also=("does-not-exist",)) is not None,
        what="the missing subPath to be refused",
        timeout=pod_start_timeout,
    )
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
