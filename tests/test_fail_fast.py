"""Which Pod states end a wait at once (they will not change) and which keep their bounded wait; which
states are the registry's or the cluster's fault rather than the cluster under test's answer."""

import pytest

from conformance.framework.diagnosis import environment_problem, final_failure, pull_refusal, refusal


def pod(reason: str, message: str = "", phase: str = "Pending", last: dict | None = None, **spec) -> dict:
    waiting = {"reason": reason, "message": message}
    status = {"name": "main", "state": {"waiting": waiting}}
    if last:
        status["lastState"] = {"terminated": last}
    return {"metadata": {"name": "p"}, "spec": spec, "status": {"phase": phase, "containerStatuses": [status]}}


@pytest.mark.parametrize(
    ("reason", "message"),
    [
        ("ErrImageNeverPull", 'Container image "x" is not present with pull policy of Never'),
        ("InvalidImageName", 'Failed to apply default image tag "UPPER"'),
        ("CreateContainerConfigError", 'secret "missing" not found'),
        ("CreateContainerError", "failed to mount image volume: ImageVolumeMountFailed: subpath not found"),
        ("RunContainerError", 'error mounting "overlay" to rootfs at "/mounted-file": not a directory'),
        ("CreateContainerError", 'failed to generate spec: failed to mkdir "": mkdir : no such file or directory'),
    ],
)
def test_a_state_that_will_not_change_ends_the_wait(reason, message):
    assert final_failure(pod(reason, message)) == f"container main: {reason}: {message}"


def test_a_refusal_at_start_shows_through_the_crash_loop():
    started = {"reason": "StartError", "message": "failed to create task: mount of image volume failed"}
    looping = pod("CrashLoopBackOff", "back-off 10s restarting failed container", last=started)
    assert refusal(looping) == f"container main: RunContainerError (StartError): {started['message']}"
    crashed = pod("CrashLoopBackOff", "back-off", last={"reason": "Error", "message": "exit 1"})
    assert refusal(crashed) is None and final_failure(crashed) is None


def test_a_refusal_names_the_mount_or_what_the_caller_says_names_it():
    assert refusal(pod("CreateContainerError", "stat /data/x: not a directory")) is None
    assert refusal(pod("CreateContainerError", "stat /data/x: not a directory"), also=("/data/x",))


@pytest.mark.parametrize(
    ("reason", "message"),
    [
        ("ErrImagePull", "unauthorized"),  # retried by the kubelet with backoff
        ("ImagePullBackOff", "Back-off pulling image"),
        ("ContainerCreating", ""),
        ("CreateContainerError", "context deadline exceeded"),  # transient: the kubelet retries
        ("RunContainerError", "context deadline exceeded"),
    ],
)
def test_retried_states_keep_their_bounded_wait(reason, message):
    assert final_failure(pod(reason, message)) is None


def test_a_failed_pod_is_final():
    failed = {"status": {"phase": "Failed", "reason": "Evicted", "message": "disk pressure"}}
    assert final_failure(failed) == "Pod phase Failed: Evicted disk pressure"


VOLUME = {"volumes": [{"name": "volume", "image": {"reference": "registry:5000/ivc/seed:1"}}]}


@pytest.mark.parametrize(
    ("message", "cause"),
    [
        ('Back-off pulling image "registry:5000/ivc/seed:1": dial tcp: connection refused', "registry"),
        (
            'failed to pull "registry:5000/ivc/seed:1": received unexpected HTTP status: 503 Service Unavailable',
            "registry",
        ),
        ('failed to pull "registry:5000/ivc/shell:c-1": i/o timeout', "registry"),  # the container's own image
    ],
)
def test_a_pull_the_registry_failed_is_the_environment_not_the_runtime(message, cause):
    stuck = pod("ErrImagePull", message, **VOLUME)
    problem = environment_problem(stuck)
    assert problem is not None and problem.cause == cause
    assert pull_refusal(stuck) is None


def test_a_pull_the_runtime_refused_is_evidence():
    stuck = pod("ErrImagePull", 'pulling "registry:5000/ivc/seed:1": unsupported media type application/x', **VOLUME)
    assert environment_problem(stuck) is None
    assert "unsupported media type" in pull_refusal(stuck)


def test_scheduling_and_sandboxes_are_the_cluster():
    unschedulable = {
        "metadata": {"name": "p"},
        "status": {
            "phase": "Pending",
            "conditions": [{"type": "PodScheduled", "status": "False", "message": "0/2 nodes are available"}],
        },
    }
    assert environment_problem(unschedulable).cause == "cluster"
    creating = pod("ContainerCreating")
    sandbox = [{"reason": "FailedCreatePodSandBox", "message": "failed to setup network for sandbox"}]
    assert environment_problem(creating, sandbox).message.endswith("failed to setup network for sandbox")
    assert environment_problem(creating) is None


def api_error(status: int, message: str):
    import json

    from kubernetes.client.exceptions import ApiException

    error = ApiException(status=status, reason="Forbidden")
    error.body = json.dumps({"kind": "Status", "message": message})
    return error


def test_admission_refusals_name_the_admission_and_what_to_allow():
    from conformance.framework.diagnosis import admission_refusal

    psa = api_error(403, 'pods "p" is forbidden: violates PodSecurity "restricted:latest": runAsNonRoot != true')
    assert admission_refusal(psa, "Pod ns/p").startswith(
        "Pod Security admission (restricted:latest) refused Pod ns/p: runAsNonRoot != true;"
    )
    webhook = api_error(403, 'admission webhook "validate.kyverno.svc" denied the request: image volumes are banned')
    assert "admission webhook validate.kyverno.svc refused Pod ns/p: image volumes are banned" in admission_refusal(
        webhook, "Pod ns/p"
    )
    policy = api_error(
        403,
        "pods 'p' is forbidden: ValidatingAdmissionPolicy 'no-image-volumes' with binding "
        "'b' denied request: failed expression: object.spec.volumes.all(v, !has(v.image))",
    )
    assert admission_refusal(policy, "Pod ns/p").startswith("ValidatingAdmissionPolicy no-image-volumes refused Pod")
    rbac = api_error(403, 'pods is forbidden: User "ci" cannot create resource "pods" in API group ""')
    assert admission_refusal(rbac, "Pod ns/p").startswith("RBAC refused Pod ns/p")
