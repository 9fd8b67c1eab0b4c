"""Run-wide shared Pods: one Pod per shape, started by the controller or by the first worker that
asks; every other process reads the record.

Two `SharedPods` on one run directory stand for the controller and a worker (or two workers); the
Kubernetes side is a recorder: what is under test is who creates what, and what a failure leaves
for the others."""

from types import SimpleNamespace

import pytest

from conformance.framework.exclusive import MountLock
from conformance.framework.manifests import MANIFESTS_DIR
from conformance.framework.shared_pods import PRESTARTED, SharedPodFailed, SharedPods, start_failure

RUNNING = {"spec": {"nodeName": "node-a"}, "status": {"phase": "Running"}}
MOUNT_REFUSED = {
    "spec": {"nodeName": "node-a"},
    "status": {
        "phase": "Pending",
        "containerStatuses": [
            {"name": "main", "state": {"waiting": {"reason": "CreateContainerError", "message": "mount failed"}}}
        ],
    },
}


class RecordingKube:
    def __init__(self, state=RUNNING) -> None:
        self.created: list[str] = []
        self.deleted: list[str] = []
        self.state = state

    def create_namespace(self, name, labels, annotations):
        pass

    def wait_for_service_account(self, namespace, name="default", timeout=60):
        pass

    def create_pod(self, namespace, body):
        self.created.append(body["metadata"]["name"])
        return body

    def wait_for_pod(self, namespace, name, condition, what, timeout):
        assert condition(self.state)
        return self.state

    def read_pod(self, namespace, name):
        return self.state

    def describe_pod(self, pod):
        return "described"

    def delete_pod(self, namespace, name, grace_seconds=0):
        self.deleted.append(name)


ARTIFACTS = {name: SimpleNamespace(reference=f"r/{name}:1") for name in ("seed", "artifact", "layered")}


def processes(tmp_path, kube, count=2):
    return [
        SharedPods(kube, "abc123", "shell", ARTIFACTS, MANIFESTS_DIR, 5.0, MountLock("abc123", tmp_path), tmp_path)
        for _ in range(count)
    ]


def test_one_pod_per_shape_for_the_whole_run(tmp_path):
    kube = RecordingKube()
    first, second = processes(tmp_path, kube)
    pod, started = first.get("layered", "basic", {})
    again, started_again = second.get("layered", "basic", {})
    assert (started, started_again) == (True, False)
    assert (again.namespace, again.name) == (pod.namespace, pod.name) and again.node == "node-a"
    other, _ = second.get("layered", "basic", {"fs_group": 4242})
    assert other.name != pod.name
    assert kube.created == [pod.name, other.name]
    assert pod.namespace == "ivc-abc123-shared-pods"


def test_what_the_controller_started_is_read_not_started_again(tmp_path):
    kube = RecordingKube()
    controller, worker = processes(tmp_path, kube)
    outcomes = controller.settle(controller.start(PRESTARTED))
    assert all(started.error is None for started in outcomes.values())
    assert len(kube.created) == len(PRESTARTED) == len(set(kube.created))
    pod, started_here = worker.get("seed", "init-sidecar", {})
    assert not started_here and pod.name == outcomes[("seed", "init-sidecar")].name
    assert len(kube.created) == len(PRESTARTED)


def test_a_pod_that_did_not_start_is_deleted_and_fails_every_reader_with_its_reason(tmp_path):
    kube = RecordingKube(MOUNT_REFUSED)
    first, second = processes(tmp_path, kube)
    for process in (first, second):
        with pytest.raises(SharedPodFailed, match="did not start: container main: CreateContainerError: mount failed"):
            process.get("layered", "basic", {})
    assert len(kube.created) == 1 and kube.deleted == kube.created


def test_any_pull_or_create_error_decides_a_shared_pod():
    assert start_failure(MOUNT_REFUSED) == "container main: CreateContainerError: mount failed"
    assert start_failure(RUNNING) is None
    # containerd 2.0: the init container cannot be created, the main one waits in PodInitializing
    unsupported = {
        "status": {
            "phase": "Pending",
            "initContainerStatuses": [
                {"name": "init", "state": {"waiting": {"reason": "CreateContainerError", "message": 'mkdir ""'}}}
            ],
            "containerStatuses": [{"name": "main", "state": {"waiting": {"reason": "PodInitializing"}}}],
        }
    }
    assert start_failure(unsupported) == 'CreateContainerError: mkdir ""'
