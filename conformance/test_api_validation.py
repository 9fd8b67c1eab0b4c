"""API validation through the real apiserver (kubernetes v1.36.3 pkg/apis/core/validation/validation.go).

No test in kubernetes v1.36.3 test/e2e_node/image_volume.go or test/e2e/common/node/image_volume.go sends
these Pods to an apiserver.

Pods are sent as server-side dry runs: a Pod the apiserver wrongly accepts must not start anything.
"""

import json

import pytest
from kubernetes.client.exceptions import ApiException

UNSUPPORTED_POLICY = "Sometimes"


def _rejection(kube, namespace, body):
    """(HTTP status, Status body) of a refused dry-run create; fails when the apiserver accepts the Pod."""
    with pytest.raises(ApiException) as raised:
        kube.create_pod(namespace, body, dry_run=True)
    return raised.value.status, json.loads(raised.value.body)


def _assert_invalid(status, body, field, message):
    causes = [(c.get("field"), c.get("message")) for c in body.get("details", {}).get("causes", [])]
    assert (status, body.get("reason")) == (422, "Invalid"), (
        f"expected 422 Invalid, got {status} {body.get('reason')}: {body.get('message')}"
    )
    assert (field, message) in causes, f"expected cause {field}: {message}; causes: {causes}"
    assert f"{field}: {message}" in body["message"], body["message"]


@pytest.mark.behaviour("api-reference-required")
def test_empty_reference_on_a_pod_is_rejected(kube, namespace, render_pod, expectation):
    status, body = _rejection(kube, namespace, render_pod("basic", reference=""))
    _assert_invalid(status, body, expectation["field"], expectation["message"])


@pytest.mark.behaviour("api-pull-policy-unsupported")
def test_unsupported_pull_policy_is_rejected_listing_the_supported_ones(
    kube, namespace, render_pod, artifacts, expectation
):
    body = render_pod("basic", reference=artifacts["seed"].reference, pull_policy=UNSUPPORTED_POLICY)
    status, rejection = _rejection(kube, namespace, body)
    message = f'Unsupported value: "{UNSUPPORTED_POLICY}": {expectation["supported"]}'
    _assert_invalid(status, rejection, expectation["field"], message)


@pytest.mark.behaviour("api-one-volume-source")
@pytest.mark.parametrize(
    "other_source", [{"emptyDir": {}}, {"hostPath": {"path": "/tmp"}}], ids=["emptyDir", "hostPath"]
)
def test_image_with_another_source_in_one_volume_is_rejected(
    kube, namespace, render_pod, artifacts, expectation, other_source
):
    body = render_pod("basic", reference=artifacts["seed"].reference)
    body["spec"]["volumes"][0].update(other_source)
    status, rejection = _rejection(kube, namespace, body)
    _assert_invalid(status, rejection, expectation["field"], expectation["message"])


@pytest.mark.behaviour("api-template-empty-reference")
def test_empty_reference_in_a_deployment_template(kube, namespace, render_pod, expectation):
    pod = render_pod("basic", reference="")
    labels = {"app": "image-volume-template"}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "template-without-reference"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": pod["spec"]},
        },
    }
    if expectation["outcome"] == "rejected":
        with pytest.raises(ApiException) as raised:
            kube.create(namespace, "Deployment", deployment, dry_run=True)
        body = json.loads(raised.value.body)
        _assert_invalid(raised.value.status, body, expectation["field"], expectation["message"])
        return
    stored = kube.create(namespace, "Deployment", deployment, dry_run=True)
    volumes = {v["name"]: v for v in stored["spec"]["template"]["spec"].get("volumes", [])}
    assert "image" in volumes.get("volume", {}), f"the template's image volume was not kept: {volumes}"
    # Left for a controller or config management to fill in: stored empty (omitted), not rejected.
    assert volumes["volume"]["image"].get("reference", "") == "", volumes["volume"]


@pytest.mark.behaviour("api-bind-mount-options")
def test_bind_mount_options_never_reach_an_image_volume(kube, namespace, render_pod, artifacts, expectation):
    """KEP-5855 bindMountOptions (1.37+, alpha): refused on an image volume's mount where the gate is on,
    dropped with the gate where it is off; never kept for the kubelet."""
    body = render_pod("basic", reference=artifacts["seed"].reference, bind_mount_options=["noexec"])
    if expectation["outcome"] == "rejected":
        status, refused = _rejection(kube, namespace, body)
        _assert_invalid(status, refused, expectation["field"], expectation["message"])
        return
    stored = kube.create_pod(namespace, body, dry_run=True)
    mount = stored["spec"]["containers"][0]["volumeMounts"][0]
    assert "bindMountOptions" not in mount, f"the apiserver kept bindMountOptions on an image volume: {mount}"
