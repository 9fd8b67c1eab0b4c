"""Run-wide shared Pods: one Pod per shape, started by the controller or by the first worker that
asks; every other process reads the record.

Two `SharedPods` on one run directory stand for the controller and a worker (or two workers); the
Kubernetes side is a recorder: what is under test is who creates what, and what a failure leaves
for the others."""

from types import SimpleNamespace

import pytest

from conformance.framework.diagnosis import EnvironmentProblem
from conformance.framework.manifests import MANIFESTS_DIR
from conformance.framework.run_locks import RunLock
from conformance.framework.shared_pods import PRESTARTED, SharedPodFailed, SharedPods, shape

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
        self.bodies: list[dict] = []
        self.deleted: list[str] = []
        self.state = state

    def create_namespace(self, name, labels, annotations):
        pass

    def wait_for_service_account(self, namespace, name="default", timeout=60):
        pass

    def ensure_namespace(self, name, labels, annotations):
        self.namespace_labels = labels

    def create_pod(self, namespace, body):
        self.created.append(body["metadata"]["name"])
        self.bodies.append(body)
        return body

    def events(self, namespace, involved=None):
        return []

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


def processes(tmp_path, kube, count=2, group_nodes=None):
    return [
        SharedPods(
            kube,
            "abc123",
            "shell",
            ARTIFACTS,
            MANIFESTS_DIR,
            5.0,
            RunLock("abc123", "mounts", tmp_path),
            tmp_path,
            group_nodes,
        )
        for _ in range(count)
    ]


def test_one_pod_per_shape_for_the_whole_run(tmp_path):
    kube = RecordingKube()
    first, second = processes(tmp_path, kube)
    pod, started = first.get(shape("layered"))
    again, started_again = second.get(shape("layered"))
    assert (started, started_again) == (True, False)
    assert (again.namespace, again.name) == (pod.namespace, pod.name) and again.node == "node-a"
    other, _ = second.get(shape("layered", fs_group=4242))
    assert other.name != pod.name
    assert kube.created == [pod.name, other.name]
    assert pod.namespace == "ivc-abc123-shared-pods"
    assert kube.namespace_labels["pod-security.kubernetes.io/enforce"] == "baseline"
    assert kube.bodies[0]["spec"]["securityContext"]["runAsUser"] == 0  # root: the read-only tests write


def test_what_the_controller_started_is_read_not_started_again(tmp_path):
    kube = RecordingKube()
    controller, worker = processes(tmp_path, kube)
    outcomes = controller.settle(controller.start(PRESTARTED))
    assert all(started.error is None for started in outcomes.values())
    assert len(kube.created) == len(PRESTARTED) == len(set(kube.created))
    pod, started_here = worker.get(shape("seed", "init-sidecar"))
    assert not started_here and pod.name == outcomes[shape("seed", "init-sidecar")].name
    assert len(kube.created) == len(PRESTARTED)


def test_each_node_group_has_its_own_pod_pinned_to_its_nodes(tmp_path):
    kube = RecordingKube()
    (process,) = processes(tmp_path, kube, 1, {"cri-o-1.36.3": ("a",), "containerd-2.3.7": ("b", "c")})
    first, _ = process.get(shape("seed").on("cri-o-1.36.3"))
    second, _ = process.get(shape("seed").on("containerd-2.3.7"))
    assert first.name != second.name
    terms = kube.bodies[1]["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert terms["nodeSelectorTerms"][0]["matchFields"][0]["values"] == ["b", "c"]


def test_a_pod_that_did_not_start_is_deleted_and_fails_every_reader_with_its_reason(tmp_path):
    kube = RecordingKube(MOUNT_REFUSED)
    first, second = processes(tmp_path, kube)
    for process in (first, second):
        with pytest.raises(SharedPodFailed, match="did not start: container main: CreateContainerError: mount failed"):
            process.get(shape("layered"))
    assert len(kube.created) == 1 and kube.deleted == kube.created


class TimingOutKube(RecordingKube):
    def wait_for_pod(self, namespace, name, condition, what, timeout):
        from conformance.infra.kube import WaitTimeout

        raise WaitTimeout(f"timed out waiting for {what}")


def test_a_pod_the_registry_kept_from_starting_blocks_its_readers(tmp_path):
    pulling = {
        "metadata": {"name": "layered"},
        "spec": {"volumes": [{"name": "volume", "image": {"reference": "r/layered:1"}}]},
        "status": {
            "phase": "Pending",
            "containerStatuses": [
                {
                    "name": "main",
                    "state": {"waiting": {"reason": "ImagePullBackOff", "message": 'pull "r/layered:1": 503'}},
                }
            ],
        },
    }
    kube = TimingOutKube(pulling)
    first, second = processes(tmp_path, kube)
    for process in (first, second):
        with pytest.raises(EnvironmentProblem, match=r"registry: .*did not start"):
            process.get(shape("layered"))
    assert len(kube.created) == 1 and kube.deleted == kube.created
