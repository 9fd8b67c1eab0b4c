"""What the container sees at the mount: exact file contents and nothing else."""

import pytest

from conformance.framework.artifacts import EXPECTED_TREES

pytestmark = pytest.mark.behaviour("content")

SEED_TREE = EXPECTED_TREES["seed"]


@pytest.mark.conformance
@pytest.mark.parametrize("pull_policy", ["Always", "IfNotPresent", None], ids=["Always", "IfNotPresent", "default"])
def test_seed_tree_is_mounted_with_exact_contents(launch, artifacts, pull_policy):
    pod = launch("basic", reference=artifacts["seed"].reference, pull_policy=pull_policy)
    pod.assert_tree("/volume", SEED_TREE)  # dir/ included: exactly its file, at every level


@pytest.mark.behaviour("digest-reference")
def test_image_volume_is_mounted_by_digest(launch, artifacts):
    launch("basic", reference=artifacts["seed"].by_digest).assert_tree("/volume", SEED_TREE)


@pytest.mark.behaviour("digest-reference")
def test_tag_and_digest_mounts_what_the_digest_names(launch, private_push):
    """`repo:tag@sha256:…` where the tag has moved on: the digest decides (as for container images)."""
    pinned = private_push("seed", tag="pinned")
    moved = private_push("seed-moved", tag="moving")
    assert moved.digest != pinned.digest
    reference = f"{moved.pull_host}/{moved.repository}:{moved.tag}@{pinned.digest}"
    # A mount of the tag's image would show moved-1 / moved-2.
    launch("basic", reference=reference).assert_tree("/volume", SEED_TREE)


@pytest.mark.behaviour("digest-reference")
def test_image_volume_is_mounted_by_tag_and_digest(launch, artifacts):
    launch("basic", reference=artifacts["seed"].by_tag_and_digest).assert_tree("/volume", SEED_TREE)
