"""What the kubelet says about a running Pod with an image volume: nothing, when nothing starts.

Before 1.37 the kubelet ensured every image volume's image on each sync of the Pod, one event each time
(kubernetes#138644, 'every image, once per minute' with the default resync; any update of the Pod syncs
it too); #138655 (v1.37.0) ensures images only when a container is about to start. So the test updates
the running Pod's spec a few times (each update is a sync; the kubelet may fold updates that arrive during
a sync into one) and counts the image volume's events, which aggregate on one Event object: its count is
what grows. Any growth is the defect: nothing was started.
"""

import pytest

from conformance.infra.wait import WaitTimeout

SYNCS = 3  # updates of the running Pod, each a sync of it by the kubelet
QUIET_WINDOW = 5.0  # seconds the kubelet has to report them: it syncs an updated Pod at once


def image_events(events, reference):
    """How many times the kubelet reported on the image volume's image (counts of aggregated events)."""
    return sum(
        event.get("count") or event.get("series", {}).get("count") or 1
        for event in events
        if event.get("reason") in ("Pulled", "Pulling") and reference in event.get("message", "")
    )


@pytest.mark.behaviour("no-event-storm")
def test_syncs_of_a_running_pod_report_nothing_about_its_image_volume(seed_pod, artifacts, observe):
    reference = artifacts["seed"].reference
    pod = seed_pod  # the run's shared one: the syncs below change nothing another test reads
    # Events reach the API in the order the kubelet made them: once `Started` is there, so are those of the start.
    started = pod.wait_for_events(
        lambda events: any(e.get("reason") == "Started" for e in events), "the Pod's Started event", QUIET_WINDOW
    )
    start = image_events(started, reference)
    for sync in range(SYNCS):
        # A spec change the API allows on a running Pod, with no effect on it: the kubelet syncs the Pod.
        pod.patch({"spec": {"activeDeadlineSeconds": 10**6 - sync}})
    try:
        stormy = pod.wait_for_events(
            lambda events: image_events(events, reference) > start,
            what=f"an image event about {reference} after {SYNCS} syncs of the running Pod",
            timeout=QUIET_WINDOW,
        )
    except WaitTimeout:
        observe("image_events_after_syncs", image_events(pod.events(), reference) - start)
        return  # quiet, as it must be
    grown = image_events(stormy, reference) - start
    pytest.fail(
        f"event storm: {SYNCS} syncs of the running Pod made the kubelet report {grown} more times on its image "
        f"volume {reference} (kubernetes#138644)"
    )
