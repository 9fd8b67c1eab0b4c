"""What the container sees at the mount: exact file contents and nothing else."""

import pytest

pytestmark = pytest.mark.behaviour("content")


@pytest.mark.conformance
@pytest.mark.parametrize("pull_policy", ["Always", "IfNotPresent", None], ids=["Always", "IfNotPresent", "default"])
def test_seed_tree_is_mounted_with_exact_contents(launch, artifacts, pull_policy):
    pod = launch("basic", reference=artifacts["seed"].reference, pull_policy=pull_policy)
    assert pod.read("/volume/dir/file") == "1"
    assert pod.read("/volume/file") == "2"
    assert pod.listdir("/volume") == {"dir", "file"}
    assert pod.listdir("/volume/dir") == {"file"}


def test_image_volume_is_mounted_by_digest(launch, artifacts):
    pod = launch("basic", reference=artifacts["seed"].by_digest)
    assert pod.read("/volume/dir/file") == "1"
    assert pod.listdir("/volume") == {"dir", "file"}
