"""Private registries: image volume pull secrets are assembled as for container images (KEP-4639).

Each test pushes the seed tree to a repository of its own in the provider's TLS + htpasswd
registry, so no other test's credentials ever put that image on the node.
"""

import base64

import pytest
import yaml

from conformance.framework.artifacts import EXPECTED_TREES
from conformance.infra.kube import is_running, waiting_reason


@pytest.mark.behaviour("pull-secret-pod")
def test_pod_image_pull_secrets_mount_the_private_image(launch, auth_push, pull_secret):
    pushed = auth_push("seed")
    pod = launch("basic", reference=pushed.reference, pull_secrets=[{"name": pull_secret}])
    pod.assert_tree("/volume", EXPECTED_TREES["seed"])


@pytest.mark.behaviour("pull-secret-service-account")
def test_service_account_pull_secrets_mount_the_private_image(launch, auth_push, pull_secret, kube, namespace):
    pushed = auth_push("seed")
    kube.create(
        namespace, "ServiceAccount", {"metadata": {"name": "puller"}, "imagePullSecrets": [{"name": pull_secret}]}
    )
    kube.wait_for_service_account(namespace, "puller")
    pod = launch("basic", reference=pushed.reference, service_account="puller")
    pod.assert_tree("/volume", EXPECTED_TREES["seed"])


@pytest.mark.behaviour("pull-secret-missing")
def test_without_credentials_the_pull_fails(launch, auth_push, expectation, pull_failure_timeout):
    pushed = auth_push("seed")
    pod = launch("basic", reference=pushed.reference, wait=False)
    reasons = expectation["reasons"].split(",")
    seen = pod.wait_waiting_reason(reasons, timeout=pull_failure_timeout)
    assert seen in reasons
    assert pod.phase == "Pending"
    pod.wait_for_event("Failed", pushed.reference, timeout=pull_failure_timeout)


@pytest.mark.slow
@pytest.mark.behaviour("pull-credentials-reverified")
def test_a_pod_without_credentials_cannot_mount_what_another_pulled_with_them(
    launch, auth_push, pull_secret, expectation, observe, pull_failure_timeout
):
    pushed = auth_push("seed")
    first = launch(
        "basic", reference=pushed.reference, pull_policy="IfNotPresent", pull_secrets=[{"name": pull_secret}]
    )
    # Same node, so the image is there: only the kubelet's re-verification stands between it and the Pod.
    second = launch(
        "basic",
        reference=pushed.reference,
        pull_policy="IfNotPresent",
        node_name=first.node,
        wait=False,
        name="without-credentials",
    )
    failures = {"ErrImagePull", "ImagePullBackOff"}
    second.wait_until(
        lambda pod: is_running(pod) or waiting_reason(pod, "main") in failures,
        "the Pod without credentials to run or to fail its pull",
        pull_failure_timeout,
    )
    mounted = is_running(second.raw)
    observe("without_credentials", "mounted the cached image" if mounted else "pull refused")
    if "reasons" not in expectation.expected:
        return  # informational: the observation is the result
    assert not mounted, "a Pod without credentials mounted a private image another Pod pulled with them"
    assert second.container_state()["waiting"]["reason"] in expectation["reasons"].split(",")
    second.wait_for_event("Failed", pushed.reference, timeout=pull_failure_timeout)


@pytest.mark.behaviour("pull-secret-not-exposed")
def test_credentials_never_appear_in_status_events_or_diagnostics(
    launch, auth_push, pull_secret, auth_registry, kube, namespace, pod_start_timeout, pull_failure_timeout
):
    pushed = auth_push("seed")
    # A tag never pulled with credentials: the failed pull must not depend on KEP-2535 re-verification
    # (see test_a_pod_without_credentials_cannot_mount_what_another_pulled_with_them).
    never_pulled = auth_push("seed", tag="never-pulled")
    with_secret = launch(
        "basic", reference=pushed.reference, pull_secrets=[{"name": pull_secret}], name="with-secret", wait=False
    )
    without = launch("basic", reference=never_pulled.reference, wait=False, name="without-credentials")
    without.wait_waiting_reason(["ErrImagePull", "ImagePullBackOff"], timeout=pull_failure_timeout)
    with_secret.wait_running(pod_start_timeout)
    endpoint = auth_registry.endpoint
    secrets = {
        "password": endpoint.password,
        "basic auth token": base64.b64encode(f"{endpoint.username}:{endpoint.password}".encode()).decode(),
    }
    # What a human or a report sees: describe texts and events (the failure diagnostics), the stored
    # Pods (the diagnostics' YAML dump) and the suite's own rendering of the registry.
    outputs = {
        "describe with-secret": with_secret.describe(),
        "describe without-credentials": without.describe(),
        "namespace events": "\n".join(e.get("message", "") for e in kube.events(namespace)),
        "stored Pods": yaml.safe_dump_all(kube.list_pods(namespace)),
        "registry client repr": repr(auth_registry),
    }
    # The message names where, never the value: a failing check must not leak what it protects.
    leaks = [
        f"{what} in {where}" for where, text in outputs.items() for what, value in secrets.items() if value in text
    ]
    assert not leaks, f"registry credentials exposed: {leaks}"
