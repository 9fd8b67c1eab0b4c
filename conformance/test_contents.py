"""What the container sees at the mount: exact file contents and nothing else."""

import pytest

from conformance.framework.artifacts import EXPECTED_TREES

pytestmark = pytest.mark.behaviour("content")

SEED_TREE = EXPECTED_TREES["seed"]


def seed_mount(shared_volume, artifacts, way, **own):
    """(Pod, path) where the seed is mounted `way` (a volume of manifests/contents.yaml): in the run's one Pod
    mounting it every way, or, where that Pod does not start, in a Pod of the test's own with `own`."""
    seed = artifacts["seed"]
    return shared_volume(
        "seed", "contents", f"/contents/{way}", {"reference": seed.reference, **own},
        digest_reference=seed.by_digest, tag_and_digest_reference=seed.by_tag_and_digest,
    )  # fmt: skip


@pytest.mark.conformance
@pytest.mark.parametrize("pull_policy", ["Always", "IfNotPresent", None], ids=["Always", "IfNotPresent", "default"])
def test_seed_tree_is_mounted_with_exact_contents(shared_volume, artifacts, pull_policy):
    way = {"Always": "always", "IfNotPresent": "if-not-present", None: "default"}[pull_policy]
    pod, path = seed_mount(shared_volume, artifacts, way, pull_policy=pull_policy)
    pod.assert_tree(path, SEED_TREE)  # dir/ included: exactly its file, at every level


@pytest.mark.behaviour("digest-reference")
def test_image_volume_is_mounted_by_digest(shared_volume, artifacts):
    pod, path = seed_mount(shared_volume, artifacts, "digest", reference=artifacts["seed"].by_digest)
    pod.assert_tree(path, SEED_TREE)


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
def test_image_volume_is_mounted_by_tag_and_digest(shared_volume, artifacts):
    own = artifacts["seed"].by_tag_and_digest
    pod, path = seed_mount(shared_volume, artifacts, "tag-and-digest", reference=own)
    pod.assert_tree(path, SEED_TREE)
