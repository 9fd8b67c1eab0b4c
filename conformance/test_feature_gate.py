"""The session-level verdict: one clear failure per scope, not dozens, when image volumes are unavailable.

With the apiserver gate off (1.31-1.34 default, or ImageVolume=false on 1.35) the apiserver
silently drops `spec.volumes[].image` (kubernetes v1.34.4 pkg/api/pod/util.go dropImageVolumes;
kind#3745); a kubelet with the gate off, or a runtime the probe saw refuse or empty the mount, takes
image volumes from its node group only. Every other test of that scope is then skipped with the same
reason; `test_image_volumes_are_available` (once per node group) fails and says why. A probe the
registry or the cluster kept from running blocks it instead: no verdict on the runtime.
"""

import pytest

from conformance.framework.diagnosis import EnvironmentProblem
from conformance.framework.probe import Seen


@pytest.mark.runs_without_feature
@pytest.mark.behaviour("image-volumes-available")
def test_image_volumes_are_available(capabilities, node_group):
    where = f" on node group {node_group.label()}" if node_group is not None and capabilities.multi_group else ""
    reason = capabilities.cluster_unavailable_reason()
    if reason is None and node_group is not None:
        reason = capabilities.group_unavailable_reason(node_group.id)
    assert reason is None, f"image volumes are unavailable{where}: {reason}"
    found = capabilities.probes[node_group.id].image_volume
    if found.seen is Seen.BLOCKED:
        cause, _, message = found.detail.partition(": ")
        raise EnvironmentProblem(cause, f"the runtime probe{where} could not run: {message}")
    assert found.seen is Seen.MOUNTED, f"a Pod mounting the seed image{where} never started ({found})"


@pytest.mark.behaviour("apiserver-keeps-image-volume")
def test_apiserver_keeps_the_image_volume_it_admitted(render_pod, kube, namespace, artifacts):
    """Read the object back: a silently stripped volume is the gate-off symptom (kind#3745)."""
    body = render_pod("basic", reference=artifacts["seed"].reference)
    stored = kube.create_pod(namespace, body, dry_run=True)
    volumes = {v["name"]: v for v in stored["spec"].get("volumes", [])}
    mounts = [m["name"] for m in stored["spec"]["containers"][0].get("volumeMounts", [])]
    assert "volume" in volumes and "image" in volumes["volume"], (
        f"the apiserver dropped spec.volumes[].image (stored volumes: {sorted(volumes)}): the ImageVolume gate is off"
    )
    assert "volume" in mounts, f"the apiserver dropped the volumeMount of the image volume (mounts: {mounts})"
