"""Run-wide shared Pods: the first process to ask starts a Pod, every other one reads its record.

Two `SharedPods` on one run directory stand for two xdist workers; the Kubernetes side is a recorder
(what is under test is who creates what, and what a failure leaves for the others)."""

from types import SimpleNamespace

import pytest

from conformance.framework.exclusive import MountLock
from conformance.framework.kube import WaitTimeout
from conformance.framework.manifests import MANIFESTS_DIR
from conformance.framework.shared_pods import SharedPodFailed, SharedPods

RUNNING = {"spec": {"nodeName": "node-a"}, "status": {"phase": "Running"}}


class RecordingKube:
    def __init__(self, start_fails: bool = False) -> None:
        self.created: list[str] = []
        self.deleted: list[str] = []
        self.start_fails = start_fails

    def create_namespace(self, name, labels, annotations):
        pass

    def wait_for_service_account(self, namespace, name="default", timeout=60):
        pass

    def create_pod(self, namespace, body):
        self.created.append(body["metadata"]["name"])
        return body

    def wait_for_pod(self, namespace, name, condition, what, timeout):
        if self.start_fails:
            raise WaitTimeout(f"gave up waiting for {what}: CreateContainerError, which will not change")
        return RUNNING

    def read_pod(self, namespace, name):
        return RUNNING

    def delete_pod(self, namespace, name, grace_seconds=0):
        self.deleted.append(name)


def workers(tmp_path, kube, count=2):
    suite = SimpleNamespace(
        run_id="abc123", shell_image="shell", artifacts={"layered": SimpleNamespace(reference="r/layered:1")}
    )
    lock = MountLock("abc123", tmp_path)
    return [SharedPods(kube, suite, MANIFESTS_DIR, 5.0, lock, tmp_path) for _ in range(count)]


def test_one_pod_per_shape_for_the_whole_run(tmp_path):
    kube = RecordingKube()
    first, second = workers(tmp_path, kube)
    pod, started = first.get("layered", "basic", {})
    again, started_again = second.get("layered", "basic", {})
    assert (started, started_again) == (True, False)
    assert (again.namespace, again.name) == (pod.namespace, pod.name) and again.node == "node-a"
    other, _ = second.get("layered", "basic", {"fs_group": 4242})
    assert other.name != pod.name
    assert kube.created == [pod.name, other.name]
    assert pod.namespace == "ivc-abc123-shared-pods"


def test_a_pod_that_did_not_start_is_deleted_and_fails_every_reader_with_its_reason(tmp_path):
    kube = RecordingKube(start_fails=True)
    first, second = workers(tmp_path, kube)
    for worker in (first, second):
        with pytest.raises(SharedPodFailed, match=r"did not start: gave up waiting .*CreateContainerError"):
            worker.get("layered", "basic", {})
    assert len(kube.created) == 1 and kube.deleted == kube.created
