"""The mount is read-only, whatever the Pod asks for (kubelet forces ro: kubernetes v1.36.3
pkg/kubelet/kubelet_pods.go makeMounts, pkg/volume/image/image.go GetAttributes)."""

import pytest

from conformance.framework.artifacts import EXPECTED_TREES

pytestmark = pytest.mark.behaviour("read-only")

WRITE_ATTEMPTS = {
    "create": "echo x > /volume/new-file",
    "append": "echo x >> /volume/file",
    "truncate": ": > /volume/file",
    "delete": "rm /volume/file",
    "chmod": "chmod 600 /volume/file",
    "mkdir": "mkdir /volume/new-dir",
    "rename": "mv /volume/file /volume/renamed",
    "touch": "touch /volume/dir/file",
}


@pytest.mark.parametrize("operation", sorted(WRITE_ATTEMPTS))
def test_write_attempts_fail_with_erofs(seed_pod, expectation, operation):
    after = seed_pod.view(WRITE_ATTEMPTS[operation], files=["/volume/file"], dirs=["/volume"])
    result = after.results[0]
    assert result.returncode != 0, f"{operation} inside the image volume succeeded: {result.output!r}"
    assert expectation["error"] in result.output, f"{operation} failed, but not with EROFS: {result.output!r}"
    assert after.files["/volume/file"] == "2"
    assert after.entries["/volume"] == {"dir", "file"}


@pytest.mark.pod_security("baseline")  # root: the write must meet the read-only mount, not a permission check
def test_readonly_false_on_the_mount_is_still_read_only(launch, artifacts, expectation):
    """`readOnly: false` asks for nothing the volume can give: the same contents, read-only."""
    pod = launch("basic", reference=artifacts["seed"].reference, read_only=False)
    mounts, result = pod.sh_each(["grep ' /volume ' /proc/mounts", "echo x > /volume/new-file"])
    mount = mounts.stdout.split()
    assert mount, "no /proc/mounts entry for /volume"
    assert "ro" in mount[3].split(","), f"mount options of /volume are {mount[3]}"
    assert result.returncode != 0 and expectation["error"] in result.output, result.output
    pod.assert_tree("/volume", EXPECTED_TREES["seed"])  # the image's tree, nothing written beside it
