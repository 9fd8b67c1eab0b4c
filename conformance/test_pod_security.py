"""Pod Security: a namespace that enforces `restricted` admits image volumes (kubernetes#130394, 1.33).

Every test of the suite runs in a namespace labelled for the Pod Security level its Pods are shaped
for (restricted by default; tests whose observation needs root ask for baseline), so clusters that
enforce `restricted` by default run the suite as it is. This test checks the admission itself, with a
compliant Pod, and that the mount works there for a non-root user.
"""

import json

import pytest
from kubernetes.client.exceptions import ApiException

from conformance.framework.artifacts import EXPECTED_TREES


@pytest.mark.pod_security("restricted")
@pytest.mark.behaviour("pod-security-restricted")
def test_a_restricted_namespace_admits_a_compliant_pod_with_an_image_volume(
    kube, namespace, render_pod, launch, artifacts, expectation, observe, capabilities, node_group
):
    reference = artifacts["seed"].reference
    try:
        kube.create_pod(namespace, render_pod("basic", reference=reference), dry_run=True)
        refused = ""
    except ApiException as error:
        if error.status != 403:
            raise
        refused = json.loads(error.body or "{}").get("message", str(error.reason))
    observe("restricted_admits_image_volume", f"refused: {refused[:300]}" if refused else "admitted")
    if expectation["outcome"] == "rejected":
        return  # informational before 1.33: what this apiserver does is the observation
    assert not refused, f"Pod Security restricted refused a compliant Pod with an image volume: {refused}"
    if node_group is not None and (unavailable := capabilities.group_unavailable_reason(node_group.id)):
        observe("restricted_mount", f"not tried: no node mounts image volumes ({unavailable[:200]})")
        return  # admission is the apiserver's, and it admitted; the nodes' verdict says why nothing mounts
    pod = launch("basic", reference=reference)
    pod.assert_tree("/volume", EXPECTED_TREES["seed"])
    uid = pod.sh("id -u").stdout.strip()
    assert uid != "0", f"the restricted Pod runs as uid {uid}: it was not shaped for restricted"
