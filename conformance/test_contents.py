"""What the container sees at the mount: exact file contents and nothing else."""

import pytest

pytestmark = pytest.mark.behaviour("content")

SEED_TREE = {"dir/file": "1", "file": "2"}


def assert_seed_tree(pod) -> None:
    top_level = {path.split("/", 1)[0] for path in SEED_TREE}
    entries = pod.listdir("/volume")
    assert entries == top_level, f"/volume: expected {sorted(top_level)}, saw {sorted(entries)}"
    for path, expected in SEED_TREE.items():
        seen = pod.read(f"/volume/{path}")
        assert seen == expected, f"/volume/{path}: expected {expected!r}, saw {seen!r}"


@pytest.mark.conformance
@pytest.mark.parametrize("pull_policy", ["Always", "IfNotPresent", None], ids=["Always", "IfNotPresent", "default"])
def test_seed_tree_is_mounted_with_exact_contents(launch, artifacts, pull_policy):
    pod = launch("basic", reference=artifacts["seed"].reference, pull_policy=pull_policy)
    assert pod.read("/volume/dir/file") == "1"
    assert pod.read("/volume/file") == "2"
    assert pod.listdir("/volume") == {"dir", "file"}
    assert pod.listdir("/volume/dir") == {"file"}


@pytest.mark.behaviour("digest-reference")
def test_image_volume_is_mounted_by_digest(launch, artifacts):
    assert_seed_tree(launch("basic", reference=artifacts["seed"].by_digest))


@pytest.mark.behaviour("digest-reference")
def test_tag_and_digest_mounts_what_the_digest_names(launch, private_push):
    """`repo:tag@sha256:…` where the tag has moved on: the digest decides (as for container images)."""
    pinned = private_push("seed", tag="pinned")
    moved = private_push("seed-moved", tag="moving")
    assert moved.digest != pinned.digest
    reference = f"{moved.pull_host}/{moved.repository}:{moved.tag}@{pinned.digest}"
    # A mount of the tag's image would show moved-1 / moved-2.
    assert_seed_tree(launch("basic", reference=reference))


@pytest.mark.behaviour("digest-reference")
def test_image_volume_is_mounted_by_tag_and_digest(launch, artifacts):
    assert_seed_tree(launch("basic", reference=artifacts["seed"].by_tag_and_digest))
