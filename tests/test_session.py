"""Which nodes the suite tests: the ones its Pods can land on, and why the others are left out."""

import pytest

from conformance.framework.session import unschedulable_reason


def node(labels=None, **spec):
    return {"metadata": {"name": "n", "labels": labels or {"kubernetes.io/os": "linux"}}, "spec": spec}


@pytest.mark.parametrize(
    ("candidate", "reason"),
    [
        (node(), None),
        (node(taints=[{"key": "example.com/soft", "effect": "PreferNoSchedule"}]), None),
        (
            node(taints=[{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]),
            "taint node-role.kubernetes.io/control-plane:NoSchedule",
        ),
        (node(unschedulable=True), "cordoned (spec.unschedulable)"),
        (node(labels={"kubernetes.io/os": "windows"}), "kubernetes.io/os=windows"),
    ],
)
def test_unschedulable_reason(candidate, reason):
    assert unschedulable_reason(candidate) == reason
