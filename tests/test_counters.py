"""What other Pods on a node make the kubelet's node-wide counters not a test's alone."""

from conformance.framework.counters import activity, starting


def pod(namespace: str, name: str, *states: dict, image: bool = True, phase: str = "Running") -> dict:
    volumes = [{"name": "v", "image": {"reference": "r/x:1"}}] if image else [{"name": "v", "emptyDir": {}}]
    return {
        "metadata": {"namespace": namespace, "name": name, "uid": name},
        "spec": {"volumes": volumes},
        "status": {
            "phase": phase,
            "containerStatuses": [{"name": f"c{i}", "restartCount": 0, "state": s} for i, s in enumerate(states)],
        },
    }


RUNNING = {"running": {}}
WAITING = {"waiting": {"reason": "CreateContainerError"}}


def test_only_other_pods_with_image_volumes_that_wait_are_busy():
    pods = [
        pod("mine", "own", WAITING),  # the test's own namespace
        pod("x", "steady", RUNNING),
        pod("x", "retrying", RUNNING, WAITING),
        pod("x", "no-image", WAITING, image=False),
        pod("x", "done", WAITING, phase="Succeeded"),
    ]
    assert starting(activity(pods, "mine")) == ["x/retrying"]


def test_a_restart_changes_the_activity():
    before = activity([pod("x", "steady", RUNNING)], "mine")
    restarted = pod("x", "steady", RUNNING)
    restarted["status"]["containerStatuses"][0]["restartCount"] = 1
    assert activity([restarted], "mine") != before
