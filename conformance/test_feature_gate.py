"""The session-level verdict: one clear failure, not dozens, when image volumes are unavailable.

With the apiserver gate off (1.31-1.34 default, or ImageVolume=false on 1.35) the apiserver
silently drops `spec.volumes[].image` (kubernetes v1.34.4 pkg/api/pod/util.go dropImageVolumes;
kind#3745). Every other test is then skipped with the same reason; `test_image_volumes_are_available`
fails and says why.
"""

import pytest


@pytest.mark.runs_without_feature
@pytest.mark.behaviour("image-volumes-available")
def test_image_volumes_are_available(capabilities):
    reason = capabilities.feature_unavailable_reason()
    assert reason is None, f"image volumes are unavailable on this cluster: {reason}"


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
