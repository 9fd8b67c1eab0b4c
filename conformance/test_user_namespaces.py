"""A Pod in a user namespace (`hostUsers: false`, KEP-127): the image volume readable, owned as in the image,
read-only. The runtime maps the volume's owners into the Pod's user namespace (containerd fixed it in 2.3.0,
backported to 2.1.7 and 2.2.2: TestImageVolumeWithUserNamespace).

Whether a node can start any Pod in a user namespace is the node's (kernel, runtime, OCI runtime), not the
image volume's: when the sandbox itself fails, the test is skipped with the runtime's words.
"""

import pytest

from conformance.framework.diagnosis import refusal
from conformance.infra.kube import is_running
from conformance.infra.wait import NotYet, wait_for

SANDBOX_FAILED = "FailedCreatePodSandBox"
OWNERS = {"owned.txt": "1234:5678", "root.txt": "0:0"}  # the layered image's owners/ (framework/artifacts.py)


def outcome(pod, timeout):
    """("running", "") once the Pod runs; ("refused", why) when its image volume's mount was refused;
    ("sandbox", why) when the node could not start the Pod's sandbox in a user namespace at all."""

    def decided():
        raw = pod.refresh()
        if is_running(raw):
            return "running", ""
        if (refused := refusal(raw)) is not None:
            return "refused", refused
        if failed := [e.get("message", "") for e in pod.events() if e.get("reason") == SANDBOX_FAILED]:
            return "sandbox", failed[-1]
        raise NotYet(f"Pod {pod.name} neither runs nor was refused")

    return wait_for(f"Pod {pod.name} to run in a user namespace, or to say why not", decided, timeout=timeout)


@pytest.mark.pod_security("baseline")  # root in the user namespace: the write must meet the read-only mount
@pytest.mark.behaviour("user-namespace")
def test_in_a_user_namespace_the_volume_is_owned_as_in_the_image_and_read_only(
    launch, artifacts, expectation, pod_start_timeout
):
    pod = launch("basic", reference=artifacts["layered"].reference, host_users=False, wait=False)
    if pod.raw["spec"].get("hostUsers") is not False:
        pytest.skip("the apiserver dropped hostUsers: false (feature gate UserNamespacesSupport off)")
    seen, why = outcome(pod, pod_start_timeout)
    if seen == "sandbox":
        pytest.skip(f"node {pod.node} starts no Pod in a user namespace (its sandbox fails before any mount): {why}")
    assert seen == "running", f"in a user namespace the image volume's mount was refused: {why}"
    uid_map, *owners, write = pod.sh_each(
        ["cat /proc/self/uid_map", *(f"stat -c %u:%g /volume/owners/{name}" for name in OWNERS),
         "echo x > /volume/new-file"]
    )  # fmt: skip
    mapping = uid_map.stdout.split()
    assert mapping[:2] != ["0", "0"], f"hostUsers: false, but the container runs in the host's: {uid_map.stdout!r}"
    for (name, owner), result in zip(OWNERS.items(), owners, strict=True):
        assert result.stdout.strip() == owner, (
            f"owners/{name} shows as {result.output.strip()!r} in the user namespace, in the image it is {owner}"
        )
    assert write.returncode != 0, f"a write into the image volume succeeded: {write.output!r}"
    assert expectation["error"] in write.output, f"the write failed, but not with EROFS: {write.output!r}"
