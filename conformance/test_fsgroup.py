"""fsGroup and fsGroupChangePolicy leave the image volume's ownership and modes alone.

The image volume plugin's SetUp changes nothing (kubernetes v1.36.3 pkg/volume/image/image.go), and
the API says fsGroupChangePolicy "has no effect on this volume type". A volume that the kubelet had chowned
would show the fsGroup as group of every entry, setgid directories and group-writable files.
"""

import pytest

# root (baseline): `find` must walk every directory of the image, the owner-only ones included.
pytestmark = [pytest.mark.behaviour("fsgroup-no-ownership-change"), pytest.mark.pod_security("baseline")]

FS_GROUP = 4242
# In the `layered` artifact: the entries layer 2 gives uid 1234 / gid 5678; all others are root's.
OWNED = {"/volume/owners/owned.txt", "/volume/owners/owned-dir"}
MODES = {"/volume/owners/owned-dir": "755", "/volume/modes/file-600": "600", "/volume/modes/dir-700": "700"}


@pytest.mark.parametrize("change_policy", [None, "Always", "OnRootMismatch"], ids=["unset", "Always", "OnRootMismatch"])
def test_fs_group_leaves_ownership_unchanged(launch, artifacts, expectation, change_policy):
    pod = launch(
        "basic", reference=artifacts["layered"].reference, fs_group=FS_GROUP, fs_group_change_policy=change_policy
    )
    ids, result = pod.sh_each(["id -G", "find /volume -exec stat -c '%u:%g %a %n' {} +"])
    groups = ids.stdout.split()
    assert str(FS_GROUP) in groups, (
        f"fsGroup {FS_GROUP} is not among the container's groups {groups}: "
        "the Pod did not get the fsGroup, so this test would prove nothing"
    )
    assert result.returncode == 0, result.output
    owners, modes = {}, {}
    for line in result.stdout.splitlines():
        owner, mode, path = line.split(" ", 2)
        owners[path], modes[path] = owner, mode
    missing = OWNED - owners.keys()
    assert not missing, f"find did not list {sorted(missing)}"
    changed = {
        path: owner
        for path, owner in owners.items()
        if owner != (expectation["owned"] if path in OWNED else expectation["other"])
    }
    assert not changed, (
        f"ownership changed on {len(changed)} of {len(owners)} entries (owned entries should be "
        f"{expectation['owned']}, others {expectation['other']}), e.g. {sorted(changed.items())[:4]}"
    )
    assert {path: modes[path] for path in MODES} == MODES, "modes changed (setgid or group bits added by fsGroup?)"
