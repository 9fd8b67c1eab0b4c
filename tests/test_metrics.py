"""The Prometheus text parsing behind the kubelet metrics tests."""

import math

import pytest

from conformance.framework.capabilities import (
    DIGEST_GATE,
    SECRET_PULLED_GATE,
    Capabilities,
    NodeInfo,
    parse_feature_gate,
)
from conformance.framework.metrics import counter, samples, stability

PAGE = """\
# HELP kubelet_image_volume_mounted_errors_total [BETA] Number of failed image volume mounts.
# TYPE kubelet_image_volume_mounted_errors_total counter
kubelet_image_volume_mounted_errors_total 2
# HELP kubelet_image_volume_requested_total [ALPHA] Number of requested image volumes.
# TYPE kubelet_image_volume_requested_total counter
kubelet_image_volume_requested_total 1.7e+01
kubernetes_feature_enabled{name="ImageVolume",stage=""} 1
kubelet_runtime_operations_duration_seconds_bucket{operation_type="pull_image",le="+Inf"} 3 1732252800000
process_start_time_seconds +Inf
go_gc_duration_seconds NaN
not a sample line
"""


def test_unlabelled_counters_by_name():
    assert counter(PAGE, "kubelet_image_volume_mounted_errors_total") == 2
    assert counter(PAGE, "kubelet_image_volume_requested_total") == 17
    assert counter(PAGE, "kubelet_image_volume_mounted_succeed_total") is None


def test_labelled_series_keep_their_labels_and_timestamps_are_dropped():
    found = samples(PAGE)
    assert found['kubernetes_feature_enabled{name="ImageVolume",stage=""}'] == 1
    assert found['kubelet_runtime_operations_duration_seconds_bucket{operation_type="pull_image",le="+Inf"}'] == 3
    assert "kubernetes_feature_enabled" not in found  # a labelled series is not its bare name


def test_special_values_and_junk_lines():
    found = samples(PAGE)
    assert found["process_start_time_seconds"] == math.inf
    assert math.isnan(found["go_gc_duration_seconds"])
    assert "not" not in found


def test_stability_from_the_help_text():
    assert stability(PAGE, "kubelet_image_volume_mounted_errors_total") == "BETA"
    assert stability(PAGE, "kubelet_image_volume_requested_total") == "ALPHA"
    assert stability(PAGE, "kubernetes_feature_enabled") is None  # no HELP line
    assert stability(PAGE, "kubelet_image_volume_requested") is None  # a prefix is not the metric


GATES = """\
kubernetes_feature_enabled{name="ImageVolume",stage=""} 1
kubernetes_feature_enabled{name="ImageVolumeWithDigest",stage="ALPHA"} 0
"""


def test_feature_gates_by_exact_name():
    assert parse_feature_gate(GATES, "ImageVolume") == (True, "")
    assert parse_feature_gate(GATES, "ImageVolumeWithDigest") == (False, "ALPHA")
    assert parse_feature_gate(GATES, "ImageVolumeWith") == (None, "")


@pytest.mark.parametrize(
    ("gates", "state"),
    [
        ((True, True), True),
        ((True, False), False),
        ((True, "absent"), False),  # a kubelet that predates the gate does not have it
        ((True, "unreadable"), None),  # no metrics: nothing is known
    ],
)
def test_related_gates_must_be_on_on_every_kubelet(gates, state):
    nodes = tuple(
        NodeInfo(
            name=f"n{i}",
            kubelet_version="v1.36.3",
            runtime="cri-o://1.36.3",
            kubelet_gate=None if gate == "unreadable" else True,
            gates={} if isinstance(gate, str) else {DIGEST_GATE: gate, SECRET_PULLED_GATE: gate},
        )
        for i, gate in enumerate(gates)
    )
    caps = Capabilities(server_version="v1.36.3", nodes=nodes, apiserver_keeps_image_volumes=True)
    assert caps.image_volume_with_digest is state
    assert caps.kubelet_reverifies_pull_credentials is state
    assert Capabilities.from_json(caps.to_json()) == caps
