"""Kubelet image volume counters (1.33+), read from /metrics through the apiserver's node proxy.

The counters are node-wide and unlabelled: each test holds `exclusive_node_counters`, so no other test
of the run mounts anything between its two scrapes, and it reads the node its own Pod ran on. Only
increases are asserted (Pods of earlier runs may have mounted before), never absolute values.
"""

import pytest

from conformance.framework.metrics import counter, stability


def _scrape_all(kube, capabilities):
    # Before the Pod is scheduled its node is unknown: read every kubelet.
    return {node.name: kube.node_metrics(node.name) for node in capabilities.nodes}


def _increase(before_text, after_text, name, node):
    before, after = counter(before_text, name), counter(after_text, name)
    assert before is not None and after is not None, f"the kubelet on {node} exposes no {name}"
    return after - before


@pytest.mark.behaviour("metrics-mount-succeeded")
def test_successful_mount_counts_requested_and_succeeded(
    exclusive_node_counters, launch, artifacts, kube, capabilities, expectation
):
    before = _scrape_all(kube, capabilities)
    pod = launch("basic", reference=artifacts["seed"].reference)
    node = pod.raw["spec"]["nodeName"]
    after = kube.node_metrics(node)
    for key in ("requested", "succeeded"):
        name = expectation[key]
        grew = _increase(before[node], after, name, node)
        assert grew >= 1, f"{name} on {node} grew by {grew:g} over a successful image volume mount, expected >= 1"
        assert stability(after, name) == expectation["stability"], (
            f"{name} on {node} is {stability(after, name)}, expected {expectation['stability']}"
        )


@pytest.mark.behaviour("metrics-mount-errors")
def test_failed_mount_counts_an_error(
    exclusive_node_counters, launch, artifacts, kube, capabilities, expectation, pod_start_timeout
):
    before = _scrape_all(kube, capabilities)
    pod = launch("basic", reference=artifacts["seed"].reference, sub_path="does-not-exist", wait=False)
    assert pod.wait_waiting_reason([expectation["reason"]], timeout=pod_start_timeout) == expectation["reason"]
    node = pod.raw["spec"]["nodeName"]
    after = kube.node_metrics(node)
    name = expectation["errors"]
    grew = _increase(before[node], after, name, node)
    assert grew >= 1, f"{name} on {node} grew by {grew:g} over a failed image volume mount, expected >= 1"
    assert stability(after, name) == expectation["stability"], (
        f"{name} on {node} is {stability(after, name)}, expected {expectation['stability']}"
    )
