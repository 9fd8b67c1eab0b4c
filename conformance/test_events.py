"""What the kubelet says about a running Pod with an image volume: nothing more once it runs.

Before 1.37 the kubelet ensured every image volume's image on each Pod sync, one event per sync
(kubernetes#138644, fixed by #138655 in 1.37.0: the image is pulled only when a container is about to
start). Events of one kind about one Pod aggregate on one Event object, so its count is what grows.
"""

import pytest

from conformance.infra.wait import WaitTimeout

QUIET_WINDOW = 15.0  # seconds a running Pod is watched: the storm came about once a second per image volume
STORM = 5  # image events about the volume beyond those of its start


def image_events(events, reference):
    """How many times the kubelet reported on the image volume's image (counts of aggregated events)."""
    return sum(
        event.get("count") or event.get("series", {}).get("count") or 1
        for event in events
        if event.get("reason") in ("Pulled", "Pulling") and reference in event.get("message", "")
    )


@pytest.mark.slow
@pytest.mark.behaviour("no-event-storm")
def test_a_running_pod_does_not_repeat_its_image_volume_events(launch, private_push, observe):
    pushed = private_push("seed")
    pod = launch("basic", reference=pushed.reference, pull_policy="IfNotPresent")
    start = image_events(pod.events(), pushed.reference)
    try:
        stormy = pod.wait_for_events(
            lambda events: image_events(events, pushed.reference) - start >= STORM,
            what=f"{STORM} more image events about {pushed.reference}",
            timeout=QUIET_WINDOW,
        )
    except WaitTimeout:
        observe("image_events_after_start", image_events(pod.events(), pushed.reference) - start)
        return  # quiet, as it must be
    grown = image_events(stormy, pushed.reference) - start
    pytest.fail(
        f"event storm: the kubelet reported {grown} more times on the image volume {pushed.reference} of a Pod "
        f"that was already running (within {QUIET_WINDOW:.0f}s; kubernetes#138644)"
    )
