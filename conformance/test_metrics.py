"""Kubelet image volume counters (1.33+), read from /metrics through the apiserver's node proxy.

The counters are node-wide and unlabelled: each test measures on a node where nothing else is
mounting image volumes (counters.py: the run's other tests are held off, other Pods' activity is
checked before and after, and the measurement is skipped when it is not the test's alone), and its
Pod is pinned there.
"""

import pytest

from conformance.framework.metrics import counter, stability
from conformance.infra.kube import is_running


def _increase(before_text, after_text, name, node):
    before, after = counter(before_text, name), counter(after_text, name)
    assert before is not None and after is not None, f"the kubelet on {node} exposes no {name}"
    return after - before


@pytest.mark.behaviour("metrics-mount-succeeded")
def test_successful_mount_counts_requested_and_succeeded(node_counters, launch, artifacts, expectation):
    node = node_counters.node
    with node_counters.alone():
        before = node_counters.scrape()
        launch("basic", reference=artifacts["seed"].reference, node_name=node)
        after = node_counters.scrape()
    for key in ("requested", "succeeded"):
        name = expectation[key]
        grew = _increase(before, after, name, node)
        assert grew >= 1, f"{name} on {node} grew by {grew:g} over a successful image volume mount, expected >= 1"
        assert stability(after, name) == expectation["stability"], (
            f"{name} on {node} is {stability(after, name)}, expected {expectation['stability']}"
        )


@pytest.mark.behaviour("metrics-mount-errors")
def test_failed_mount_counts_an_error(node_counters, launch, artifacts, expectation, pod_start_timeout):
    node = node_counters.node
    with node_counters.alone():
        before = node_counters.scrape()
        pod = launch(
            "basic", reference=artifacts["seed"].reference, sub_path="does-not-exist", node_name=node, wait=False
        )
        pod.wait_running_or_refused(pod_start_timeout, mount_words=("does-not-exist",))
        after = node_counters.scrape()
    assert not is_running(pod.raw), "subPath ignored: the Pod runs although its subPath does-not-exist is missing"
    name = expectation["errors"]
    grew = _increase(before, after, name, node)
    assert grew >= 1, f"{name} on {node} grew by {grew:g} over a failed image volume mount, expected >= 1"
    assert stability(after, name) == expectation["stability"], (
        f"{name} on {node} is {stability(after, name)}, expected {expectation['stability']}"
    )
