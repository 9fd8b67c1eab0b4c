"""subPath and subPathExpr: exactly the subtree, siblings absent (a root mount is the classic defect)."""

import pytest
from kubernetes.client.exceptions import ApiException

from conformance.framework.kube import is_running, waiting_reason

# What subPath "dir" of the seed tree must show: dir/'s content, and nothing of the image root.
DIR_SUBTREE = {"file": "1"}


@pytest.mark.behaviour("subpath-directory")
def test_directory_subpath_shows_only_that_directory(launch, artifacts):
    pod = launch("basic", reference=artifacts["seed"].reference, sub_path="dir")
    pod.assert_tree("/volume", DIR_SUBTREE)  # a sibling showing up means the image root was mounted


@pytest.mark.behaviour("subpath-file")
def test_file_subpath_is_mounted_exactly_or_refused(launch, artifacts, expectation, observe, pod_start_timeout):
    """Runtimes may refuse a file subPath; mounting anything but that file would be a silent lie."""
    refused = expectation["refused_reason"]
    pod = launch(
        "basic", reference=artifacts["seed"].reference, sub_path="dir/file", mount_path="/mounted-file", wait=False
    )
    pod.wait_until(
        lambda p: is_running(p) or waiting_reason(p, "main") == refused,
        what=f"the container to run or to wait with {refused}",
        timeout=pod_start_timeout,
    )
    if is_running(pod.raw):
        observe("file_subpath", "mounted")
        assert pod.read("/mounted-file") == "1", "a file subPath must mount exactly that file"
    else:
        message = pod.container_state()["waiting"].get("message", "")
        observe("file_subpath", f"refused: {message[:200]}")
        # A refusal of this mount, not any CreateContainerError: the message names the subPath or the mount.
        named = "dir/file" in message or "/mounted-file" in message or "subpath" in message.lower()
        assert named, f"{refused} does not name the subPath or the image volume mount: {message!r}"


@pytest.mark.behaviour("subpath-expr")
def test_subpath_expr_is_expanded_from_the_environment(launch, artifacts):
    pod = launch("basic", reference=artifacts["seed"].reference, sub_path_expr="$(VOLUME_SUBDIR)", env_value="dir")
    pod.assert_tree("/volume", DIR_SUBTREE)


@pytest.mark.behaviour("subpath-missing")
def test_missing_subpath_fails_container_creation(launch, artifacts, expectation, pod_start_timeout):
    pod = launch("basic", reference=artifacts["seed"].reference, sub_path="does-not-exist", wait=False)
    reason = pod.wait_waiting_reason([expectation["reason"]], timeout=pod_start_timeout)
    message = pod.container_state()["waiting"].get("message", "")
    assert reason == expectation["reason"]
    assert expectation["message"] in message, f"waiting message lacks {expectation['message']}: {message!r}"
    assert pod.phase == "Pending"


@pytest.mark.behaviour("subpath-rejected-by-api")
@pytest.mark.parametrize("field", ["sub_path", "sub_path_expr"])
def test_subpath_is_rejected_by_the_api(kube, namespace, render_pod, artifacts, expectation, field):
    body = render_pod("basic", reference=artifacts["seed"].reference, **{field: "dir"})
    with pytest.raises(ApiException) as raised:
        kube.create_pod(namespace, body)
    assert raised.value.status == 422
    assert expectation["message"] in raised.value.body
