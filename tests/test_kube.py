"""`Kube`, the one way to the API, on the running local cluster: plain REST calls through the client's
transport must behave as the client's typed calls did — errors as ApiException with the Status body, a
bearer token sent (CI's clusters authenticate with client certificates), watches that end the moment
they are satisfied or time out naming what they saw."""

import json
import threading
import time
import uuid

import pytest
import yaml

from conformance.infra.kube import WATCH_WINDOW, ApiException, Kube, WaitTimeout


@pytest.fixture(scope="module")
def kube(local_cluster):
    handle, _ = local_cluster
    kube = Kube(handle.kubeconfig, handle.context)
    yield kube
    kube.close()


@pytest.fixture
def namespace(kube):
    name = f"ivc-unit-kube-{uuid.uuid4().hex[:8]}"
    kube.ensure_namespace(name, labels={"ivc.local/unit-test": "kube"}, annotations={})
    yield name
    kube.delete_namespace(name)


def test_an_error_answer_raises_its_status_with_the_status_body(kube):
    with pytest.raises(ApiException) as raised:
        kube.get("/api/v1/namespaces/ivc-no-such-namespace/pods/nothing")
    assert raised.value.status == 404
    status = json.loads(raised.value.body)
    assert (status["kind"], status["reason"]) == ("Status", "NotFound")
    assert kube.read_node("ivc-no-such-node") is None  # what callers ask for: 404 is "not there"


def test_a_bearer_token_authenticates_the_caller(kube, namespace, tmp_path):
    kube.create(namespace, "ServiceAccount", {"metadata": {"name": "reader"}})
    token_request = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}}
    path = f"/api/v1/namespaces/{namespace}/serviceaccounts/reader/token"
    token = json.loads(kube.request("POST", path, body=token_request).data)["status"]["token"]
    with open(kube.kubeconfig) as file:
        config = yaml.safe_load(file)
    context = next(c for c in config["contexts"] if c["name"] == (kube.context or config["current-context"]))
    config["users"] = [{"name": "reader", "user": {"token": token}}]
    context["context"]["user"] = "reader"
    (tmp_path / "kubeconfig").write_text(yaml.safe_dump(config))
    as_reader = Kube(str(tmp_path / "kubeconfig"), kube.context)
    with pytest.raises(ApiException) as raised:  # no RBAC for it: refused, and the refusal names it
        as_reader.list_pods(namespace)
    assert raised.value.status == 403
    assert f"system:serviceaccount:{namespace}:reader" in json.loads(raised.value.body)["message"]


def test_a_watch_ends_on_the_event_that_satisfies_it(kube, namespace):
    later = threading.Timer(1.0, kube.create, (namespace, "ServiceAccount", {"metadata": {"name": "later"}}))
    started = time.monotonic()
    later.start()
    try:
        kube.wait_for_service_account(namespace, "later", timeout=2 * WATCH_WINDOW)
    finally:
        later.join()
    # A wait that missed the event would only see the object in the re-list after its watch window.
    assert time.monotonic() - started < WATCH_WINDOW / 2, "the watch did not end on the ADDED event"


def test_a_watch_that_is_never_satisfied_times_out_naming_what_it_saw(kube, namespace):
    with pytest.raises(WaitTimeout, match=r"timed out after 2s waiting for nothing\nseen: default"):
        kube.watch_until(
            f"/api/v1/namespaces/{namespace}/serviceaccounts",
            satisfied=lambda accounts: None,
            what="nothing",
            timeout=2,
            describe=lambda accounts: "seen: " + ", ".join(sorted(accounts)),
        )
