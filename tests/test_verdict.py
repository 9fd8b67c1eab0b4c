"""The run's verdict from what was collected and what ran: CONFORMANT only when every required check that
applies ran and passed; per node group when the nodes differ; exit statuses that follow the verdict."""

import pytest

from conformance.framework.capabilities import Capabilities, NodeInfo
from conformance.framework.expectations import TABLE, decided_by
from conformance.framework.probe import Finding, MountProbe, Seen
from conformance.framework.verdict import (
    EXIT_CONFORMANT,
    EXIT_INCOMPLETE,
    EXIT_NOT_CONFORMANT,
    Check,
    Result,
    classify,
    run_verdict,
)

MOUNTED = MountProbe(Finding(Seen.MOUNTED), Finding(Seen.MOUNTED), Finding(Seen.MOUNTED))
NO_ARTIFACTS = MountProbe(Finding(Seen.MOUNTED), Finding(Seen.EMPTY, "[]"), Finding(Seen.MOUNTED))


def node(name: str, runtime: str) -> NodeInfo:
    return NodeInfo(name=name, kubelet_version="v1.36.3", runtime=runtime, kubelet_gate=True)


def cluster(*nodes: NodeInfo, probes: dict | None = None) -> Capabilities:
    caps = Capabilities(server_version="v1.36.3", nodes=nodes, apiserver_keeps_image_volumes=True)
    groups = [g.id for g in caps.groups]
    return Capabilities(
        server_version="v1.36.3",
        nodes=nodes,
        apiserver_keeps_image_volumes=True,
        probes=probes or dict.fromkeys(groups, MOUNTED),
    )


CRIO = cluster(node("a", "cri-o://1.36.3"))
MIXED = cluster(
    node("a", "cri-o://1.36.3"),
    node("b", "containerd://2.3.7"),
    probes={"cri-o-1.36.3": MOUNTED, "containerd-2.3.7": NO_ARTIFACTS},
)
BEHAVIOURS = sorted({rule.behaviour for rule in TABLE})


def checks(caps: Capabilities) -> list[Check]:
    """One check per behaviour (per node group for what a kubelet decides, when the nodes differ)."""
    found = []
    for behaviour in BEHAVIOURS:
        groups = [g.id for g in caps.groups] if caps.multi_group and decided_by(behaviour) == "kubelet" else [None]
        for group in groups:
            found.append(Check(f"t::{behaviour}" + (f"[{group}]" if group else ""), behaviour, group))
    return found


def all_passed(caps: Capabilities, collected: list[Check]) -> dict[str, Result]:
    results = {}
    for check in collected:
        classified = classify(check, caps)
        outcome = "skipped" if classified is None or classified.level.value == "not-applicable" else "passed"
        results[check.nodeid] = Result(check.nodeid, outcome, level=classified.level.value if classified else "")
    return results


def test_every_required_check_passed_is_conformant():
    collected = checks(CRIO)
    verdict = run_verdict(CRIO, collected, all_passed(CRIO, collected))
    assert verdict.state == "CONFORMANT" and verdict.exit_status() == EXIT_CONFORMANT
    assert verdict.line().startswith(f"CONFORMANT: all {verdict.required_total} required checks passed")


def test_a_deselected_required_check_makes_the_run_incomplete():
    collected = checks(CRIO)
    results = all_passed(CRIO, collected)
    results.pop("t::content")
    deselected = [Check(c.nodeid, c.behaviour, c.group, c.nodeid != "t::content") for c in collected]
    verdict = run_verdict(CRIO, deselected, results)
    assert verdict.state == "INCOMPLETE" and verdict.exit_status() == EXIT_INCOMPLETE
    assert "1 required check did not run (deselected 1)" in verdict.line()
    assert not verdict.line().startswith("CONFORMANT")


def test_a_required_behaviour_missing_from_the_run_makes_it_incomplete():
    collected = [c for c in checks(CRIO) if c.behaviour != "read-only"]  # its file was not on the command line
    verdict = run_verdict(CRIO, collected, all_passed(CRIO, collected), partial_selection="part of the suite")
    assert verdict.state == "INCOMPLETE"
    assert verdict.not_run["behaviour read-only"] == "not in this run"


@pytest.mark.parametrize(("outcome", "why"), [("skipped", "skipped"), ("blocked", "blocked")])
def test_a_required_check_that_did_not_run_is_named_with_its_reason(outcome, why):
    collected = checks(CRIO)
    results = all_passed(CRIO, collected)
    results["t::content"] = Result("t::content", outcome, message="registry: 503", level="required")
    verdict = run_verdict(CRIO, collected, results)
    assert verdict.state == "INCOMPLETE"
    assert verdict.not_run["t::content"] == f"{why}: registry: 503"


def test_an_optional_failure_leaves_the_cluster_conformant():
    collected = checks(CRIO)
    results = all_passed(CRIO, collected)
    results["t::metrics-mount-succeeded"] = Result("t::metrics-mount-succeeded", "failed", level="optional")
    verdict = run_verdict(CRIO, collected, results)
    assert verdict.state == "CONFORMANT" and verdict.exit_status() == EXIT_CONFORMANT
    assert "1 optional check failed" in verdict.line()


def test_a_crashed_workers_test_is_a_failure_of_its_level():
    collected = checks(CRIO)
    results = all_passed(CRIO, collected)
    results["t::content"] = Result("t::content", "error", message="worker 'gw1' crashed")  # no level reported
    verdict = run_verdict(CRIO, collected, results)
    assert verdict.state == "NOT CONFORMANT" and verdict.exit_status() == EXIT_NOT_CONFORMANT


def test_known_defects_fail_the_run_unless_accepted():
    collected = checks(CRIO)
    results = all_passed(CRIO, collected)
    results["t::content"] = Result("t::content", "known-defect", level="known-defect")
    verdict = run_verdict(CRIO, collected, results)
    assert verdict.line() == "NOT CONFORMANT: 1 known defect"
    assert verdict.exit_status() == EXIT_NOT_CONFORMANT
    assert verdict.exit_status(accept_known_defects=True) == EXIT_CONFORMANT


def test_accepted_known_defects_do_not_hide_an_incomplete_run():
    collected = checks(CRIO)
    results = all_passed(CRIO, collected)
    results["t::content"] = Result("t::content", "known-defect", level="known-defect")
    del results["t::read-only"]
    verdict = run_verdict(CRIO, collected, results)
    assert "and INCOMPLETE" in verdict.line()
    assert verdict.exit_status(accept_known_defects=True) == EXIT_NOT_CONFORMANT


def test_mixed_nodes_name_the_node_group_that_fails():
    collected = checks(MIXED)
    results = all_passed(MIXED, collected)
    defect = "t::artifact-mounted-or-refused[containerd-2.3.7]"
    results[defect] = Result(defect, "known-defect", level="known-defect")
    verdict = run_verdict(MIXED, collected, results)
    line = verdict.line()
    assert line.startswith(
        "NOT CONFORMANT on 1 of 2 node groups: containerd 2.3.7 (kubelet v1.36.3; b): 1 known defect"
    )
    assert "cri-o" not in line


def test_a_node_group_without_image_volumes_is_not_conformant_alone():
    refused = MountProbe(Finding(Seen.REFUSED, "failed to mkdir"), Finding(Seen.REFUSED, "x"))
    caps = cluster(
        node("a", "cri-o://1.36.3"),
        node("b", "containerd://2.0.14"),
        probes={"cri-o-1.36.3": MOUNTED, "containerd-2.0.14": refused},
    )
    collected = checks(caps)
    verdict = run_verdict(caps, collected, all_passed(caps, collected))
    assert verdict.line().startswith(
        "NOT CONFORMANT on 1 of 2 node groups: containerd 2.0.14 (kubelet v1.36.3; b): image volumes unavailable"
    )
