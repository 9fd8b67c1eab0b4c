"""OCI artifacts (empty config, files named by their title) as image volumes: a capability (CRI-O >= 1.33
has it, no containerd version does: containerd#11907) that the runtime probe detects. Where it sees
artifacts mount, they must mount right (content, read-only, subPath: required); what every runtime
owes is a loud refusal where it lacks them.

CRI-O bind-mounts each file read-only at <mount>/<title> ("subpath/2" → <mount>/subpath/2) and
creates the directories around them in the container's own writable layer.
"""

import pytest

from conformance.oci import ArtifactSpec

ARTIFACT = {"artifact.txt": "hello artifact", "subpath/2": "2", "subpath/3": "3"}

WRITE_ATTEMPTS = {
    "overwrite": "echo x > /volume/artifact.txt",
    "append": "echo x >> /volume/artifact.txt",
    "truncate": ": > /volume/artifact.txt",
    "chmod": "chmod 600 /volume/artifact.txt",
    "touch": "touch /volume/subpath/2",
}


@pytest.fixture
def artifact_pod(shared_pod):
    return shared_pod("artifact")


@pytest.mark.behaviour("artifact-content")
def test_artifact_files_are_mounted_with_exact_contents(artifact_pod):
    artifact_pod.assert_tree("/volume", ARTIFACT)


@pytest.mark.behaviour("artifact-read-only")
@pytest.mark.parametrize("operation", sorted(WRITE_ATTEMPTS))
def test_artifact_files_are_read_only(artifact_pod, expectation, operation):
    kept = ("artifact.txt", "subpath/2")
    after = artifact_pod.view(WRITE_ATTEMPTS[operation], files=[f"/volume/{path}" for path in kept])
    result = after.results[0]
    assert result.returncode != 0, f"{operation} of an artifact file succeeded: {result.output!r}"
    error = expectation["error"]
    assert error in result.output, f"{operation} failed, but without {error!r}: {result.output!r}"
    for path in kept:
        seen = after.files[f"/volume/{path}"]
        assert seen == ARTIFACT[path], f"/volume/{path} after {operation}: expected {ARTIFACT[path]!r}, saw {seen!r}"


@pytest.mark.pod_security("baseline")  # root: whether the directory takes entries, not a permission check
@pytest.mark.behaviour("artifact-mount-directory")
def test_new_entries_beside_artifact_files_are_reported(launch, artifacts, observe):
    """Only the files are mounted read-only on CRI-O; whether the directory takes new entries is
    observed, in a Pod of its own because a successful write would change what others list."""
    pod = launch("basic", reference=artifacts["artifact"].reference)
    created = pod.sh("echo x > /volume/new-entry")
    observe("new_entry_in_artifact_mount", "created" if created.returncode == 0 else created.output.strip())


@pytest.mark.behaviour("artifact-subpath")
def test_artifact_subpath_shows_only_that_prefix(launch, artifacts):
    pod = launch("basic", reference=artifacts["artifact"].reference, sub_path="subpath")
    entries = pod.listdir("/volume")
    assert "artifact.txt" not in entries, f"subPath ignored: /volume shows the artifact's root {sorted(entries)}"
    pod.assert_tree("/volume", {"2": "2", "3": "3"})  # subpath/2 and subpath/3, and nothing else


@pytest.mark.behaviour("artifact-mounted-or-refused")
def test_an_artifact_is_mounted_or_the_pod_says_why(launch, artifacts, pod_start_timeout, observe):
    """Whatever the runtime: never a Running Pod with an empty or partial artifact mount."""
    pod = launch("basic", reference=artifacts["artifact"].reference, wait=False)
    # A runtime that cannot use an artifact says so: its pull fails with the runtime's reason (a registry
    # fault is retried, then blocks the check), or it refuses the mount at container creation or start.
    said = pod.wait_running_or_refused(pod_start_timeout, pulls=True)
    if said is None:
        entries = pod.listdir("/volume")
        observe("artifact", f"Running, /volume shows {sorted(entries)}")
        assert entries == {"artifact.txt", "subpath"}, f"a Running Pod mounts the artifact as {sorted(entries)}"
        return
    observe("artifact", f"refused: {said[:200]}")
    message = said.rpartition(": ")[2]
    assert message.strip(), f"refused without a message: the user cannot tell why ({said!r})"


@pytest.mark.behaviour("artifact-under-two-names")
def test_an_artifact_pushed_under_two_names_mounts_under_both(
    request, launch, private_push, ivc_session, pod_start_timeout
):
    """Registries and mirrors serve one artifact under several names. The second name must mount like the
    first, on the node that already holds the artifact under the first."""
    owner = f"{ivc_session.run_id} {request.node.nodeid}"  # content of its own: no other test holds this digest
    own = ArtifactSpec(files=(("owner.txt", owner.encode()),))
    first, second = private_push(own, tag="first"), private_push(own, tag="second")
    before = launch("basic", reference=first.reference, name="first")
    before.assert_tree("/volume", {"owner.txt": owner})
    after = launch("basic", reference=second.reference, name="second", node_name=before.node, wait=False)
    refused = after.wait_running_or_refused(pod_start_timeout, pulls=True)
    assert refused is None, f"the artifact's second name {second.tag} does not mount beside its first: {refused}"
    after.assert_tree("/volume", {"owner.txt": owner})
