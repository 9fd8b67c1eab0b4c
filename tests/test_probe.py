"""The runtime probe blames only what it saw: evidence about the image volume, or no verdict at all."""

from conformance.framework.probe import Outcome, Seen, probe

MOUNTED = Outcome(entries={"dir", "file"}, content="1")
ARTIFACT = Outcome(entries={"artifact.txt", "subpath"})
SUBTREE = Outcome(entries={"file"}, content="1")


def test_everything_mounted():
    found = probe(MOUNTED, ARTIFACT, SUBTREE)
    assert (found.image_volumes_mount, found.artifacts_mount, found.sub_path.seen) == (True, True, Seen.MOUNTED)


def test_an_empty_or_wrong_mount_or_a_refusal_refutes_image_volumes():
    assert probe(Outcome(entries=set()), ARTIFACT, None).image_volume.refutes
    assert probe(Outcome(entries={"dir"}, content=""), ARTIFACT, None).image_volume.seen is Seen.WRONG
    refused = probe(Outcome(refused='CreateContainerError: failed to mkdir ""'), ARTIFACT, None).image_volume
    assert refused.seen is Seen.REFUSED and refused.refutes


def test_a_registry_or_cluster_problem_or_a_timeout_refutes_nothing():
    blocked = probe(Outcome(blocked="registry: 503"), Outcome(blocked="registry: 503"), None)
    assert blocked.image_volume.seen is Seen.BLOCKED and not blocked.image_volume.refutes
    assert blocked.artifact.undetermined
    timed_out = probe(Outcome(timed_out="timed out after 120s"), ARTIFACT, None).image_volume
    assert timed_out.seen is Seen.TIMED_OUT and not timed_out.refutes


def test_subpath_ignored_and_artifacts_silently_empty_are_named():
    found = probe(MOUNTED, Outcome(entries=set()), MOUNTED)
    assert found.sub_path.seen is Seen.IGNORED
    assert found.artifact.seen is Seen.EMPTY
    assert probe(MOUNTED, ARTIFACT, None).sub_path.seen is Seen.NOT_PROBED
