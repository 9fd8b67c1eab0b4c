"""Admission: AlwaysPullImages rewrites image volume pull policies as it does container ones
(kubernetes v1.36.3 plugin/pkg/admission/alwayspullimages/admission.go).

Whether the plugin is on is discovered once per run (a dry-run Pod whose IfNotPresent came back
as Always); the expectation table skips this test when the plugin is off.
"""

import pytest


@pytest.mark.behaviour("always-pull-images-admission")
def test_if_not_present_is_stored_as_always(launch, artifacts, expectation, pod_start_timeout):
    pod = launch("basic", reference=artifacts["seed"].reference, pull_policy="IfNotPresent", wait=False)
    stored = pod.refresh()["spec"]
    assert stored["volumes"][0]["image"]["pullPolicy"] == expectation["stored"], stored["volumes"][0]
    assert stored["containers"][0]["imagePullPolicy"] == expectation["stored"], stored["containers"][0]
    # The rewritten policy must still mount: Admit runs before Validate, which refuses anything else.
    assert pod.wait_running(pod_start_timeout).read("/volume/dir/file") == "1"
