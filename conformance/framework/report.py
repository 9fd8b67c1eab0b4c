"""The one place that explains results: per-failure diagnostics, the run summary, artifact lists.

Workers collect diagnostics for their own failed tests (they hold the namespace); the controller
receives every report (xdist forwards them, user_properties included) and writes the summary once.
"""

from __future__ import annotations

import json
import re
import shlex
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from conformance.cluster.host import run
from conformance.framework.artifacts import CATALOG, SHARED_REPOSITORY_PREFIX, spec_of

VERDICTS_KEY = pytest.StashKey["VerdictCollector"]()
KNOWN_DEFECT = "known-defect"
OUTCOMES = ("passed", "failed", "error", KNOWN_DEFECT, "skipped")


@dataclass(frozen=True)
class RunVerdict:
    """The one line a reader looks for: is this cluster conformant, and if not, why."""

    unavailable: str | None  # image volumes unavailable at all (the session-level verdict)
    required_failed: int
    known_defects: int  # of required behaviours: the cluster is NOT CONFORMANT
    required_skipped: int
    optional_failed: int
    optional_known_defects: int = 0  # of optional capabilities: reported, conformance unaffected

    @property
    def conformant(self) -> bool:
        return not (self.unavailable or self.required_failed or self.known_defects)

    def line(self) -> str:
        if self.unavailable:
            head = f"NOT CONFORMANT: image volumes unavailable: {self.unavailable}"
        elif self.conformant:
            head = "CONFORMANT: every required check that ran passed"
        else:
            parts = [_count(self.required_failed, "required check") + " failed"] if self.required_failed else []
            if self.known_defects:
                parts.append(_count(self.known_defects, "known defect") + " of the runtime")
            head = "NOT CONFORMANT: " + ", ".join(parts)
        extras = []
        if self.required_skipped:
            extras.append(_count(self.required_skipped, "required check") + " skipped (see the reasons)")
        if self.optional_failed:
            extras.append(_count(self.optional_failed, "optional capability", "optional capabilities") + " failed")
        if self.optional_known_defects:
            extras.append(_count(self.optional_known_defects, "known defect") + " in optional capabilities")
        return head + (f"; {'; '.join(extras)}" if extras else "")


def _count(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else many or one + 's'}"


def run_verdict_of(config: pytest.Config) -> RunVerdict | None:
    """The run's verdict from the controller's collected reports; None outside a conformance run."""
    from conformance.framework.plugin import SESSION_KEY

    collector = config.stash.get(VERDICTS_KEY, None)
    suite = config.stash.get(SESSION_KEY, None)
    if collector is None or suite is None:
        return None
    counts = Counter((v.level, v.outcome) for v in collector.verdicts.values())
    defects = Counter(v.defect_of for v in collector.verdicts.values() if v.outcome == KNOWN_DEFECT)
    return RunVerdict(
        unavailable=suite.capabilities.feature_unavailable_reason(),
        # A known defect that passed fails too: "fixed here? update the table".
        required_failed=sum(
            counts[level, outcome] for level in ("required", KNOWN_DEFECT) for outcome in ("failed", "error")
        ),
        known_defects=defects["required"],
        optional_known_defects=defects["optional"],
        required_skipped=counts["required", "skipped"],
        optional_failed=counts["optional", "failed"] + counts["optional", "error"],
    )


@dataclass
class Verdict:
    nodeid: str
    outcome: str  # passed / failed / skipped / error
    level: str
    behaviour: str
    source: str
    message: str = ""
    hint: str = ""
    observed: dict[str, str] = field(default_factory=dict)
    defect_of: str = ""  # a known defect's level where the behaviour works: required or optional


class VerdictCollector:
    """Registered in the controller only: turns test reports into one verdict per test."""

    def __init__(self) -> None:
        self.verdicts: dict[str, Verdict] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        props = {key: str(value) for key, value in report.user_properties}
        outcome: str = report.outcome
        if report.when != "call" and outcome == "failed":
            outcome = "error"
        elif report.when != "call" and outcome == "passed":
            return  # setup/teardown passing says nothing new
        previous = self.verdicts.get(report.nodeid)
        if previous and previous.outcome in ("failed", "error"):
            return  # a teardown pass must not hide the call's failure
        message = ""
        if report.skipped and hasattr(report, "wasxfail"):
            outcome, message = KNOWN_DEFECT, str(report.wasxfail)  # a known defect, as the table says
        elif report.failed:
            message = _first_line(report.longreprtext)
        elif report.skipped and isinstance(report.longrepr, tuple):
            message = str(report.longrepr[2]).removeprefix("Skipped: ")
        self.verdicts[report.nodeid] = Verdict(
            nodeid=report.nodeid,
            outcome=outcome,
            level=props.get("ivc.level", "unclassified"),
            behaviour=props.get("ivc.behaviour", ""),
            source=props.get("ivc.source", ""),
            message=message,
            hint=props.get("ivc.hint", ""),
            defect_of=props.get("ivc.defect_of", ""),
            observed={k.removeprefix("ivc.observed."): v for k, v in props.items() if k.startswith("ivc.observed.")},
        )


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.startswith("E "):
            return line[2:].strip()[:300]
    return (text.strip().splitlines() or [""])[-1][:300]


def install_collector(config: pytest.Config) -> None:
    collector = VerdictCollector()
    config.stash[VERDICTS_KEY] = collector
    config.pluginmanager.register(collector, "ivc-verdicts")


# -- diagnostics ------------------------------------------------------------------------------
def _safe_name(nodeid: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid)[-150:]


def collect_diagnostics(item: pytest.Item, report: pytest.TestReport) -> None:
    """Describe every Pod in the test's namespaces; write full dumps under --report-dir."""
    from conformance.framework.fixtures import NAMESPACES_KEY  # late: fixtures import the plugin
    from conformance.framework.kube import Kube
    from conformance.framework.plugin import SESSION_KEY

    namespaces = item.stash.get(NAMESPACES_KEY, [])
    suite = item.config.stash.get(SESSION_KEY, None)
    if not namespaces or suite is None:
        return
    kube = Kube(suite.handle.kubeconfig, suite.handle.context)
    summary: list[str] = []
    report_dir = item.config.getoption("report_dir")
    target = Path(report_dir) / "diagnostics" / _safe_name(item.nodeid) if report_dir else None
    nodes: set[str] = set()
    for namespace in namespaces:
        try:
            pods = kube.list_pods(namespace)
            events = kube.events(namespace)
        except Exception as error:  # noqa: BLE001 - diagnostics must never mask the failure
            summary.append(f"namespace {namespace}: unreadable ({error})")
            continue
        for pod in pods:
            summary.append(kube.describe_pod(pod))
            if pod["spec"].get("nodeName"):
                nodes.add(pod["spec"]["nodeName"])
        if target is None:
            continue
        target.mkdir(parents=True, exist_ok=True)
        (target / f"{namespace}.pods.yaml").write_text(yaml.safe_dump_all(pods, sort_keys=False))
        (target / f"{namespace}.events.txt").write_text(
            "".join(
                f"{e.get('firstTimestamp') or e.get('eventTime')} {e.get('type')} {e.get('reason')} "
                f"{e.get('involvedObject', {}).get('name')}: {e.get('message', '')}\n"
                for e in events
            )
        )
        for pod in pods:
            for container in pod["spec"].get("containers", []) + pod["spec"].get("initContainers", []):
                log = kube.pod_log(namespace, pod["metadata"]["name"], container["name"])
                (target / f"{pod['metadata']['name']}.{container['name']}.log").write_text(log)
    if target is not None:
        _node_side_diagnostics(suite, target, namespaces, nodes)
        summary.append(f"full diagnostics: {target}")
    if summary:
        report.sections.append(("ivc diagnostics", "\n".join(summary)))


def _node_side_diagnostics(suite: Any, target: Path, namespaces: list[str], nodes: set[str]) -> None:
    """On each node the test's Pods ran on: the runtime's and kubelet's log lines about the test's
    namespaces (plus a tail for context) and `crictl info`, where the provider gives node access."""
    access = suite.handle.node_access
    for node in sorted(nodes):
        for component, command in access.logs.items():
            result = run(access.on(node, *command), what=f"{component} log on {node}", timeout=60, check=False)
            lines = result.stdout.splitlines()
            about = [line for line in lines if any(namespace in line for namespace in namespaces)]
            (target / f"{node}.{component}.about-test.log").write_text("\n".join(about[-500:]) + "\n")
            (target / f"{node}.{component}.tail.log").write_text("\n".join(lines[-200:]) + "\n")
        if access.crictl:
            result = run(access.on(node, access.crictl, "info"), what=f"crictl info on {node}", timeout=30, check=False)
            (target / f"{node}.crictl-info.json").write_text(result.stdout or result.stderr)


def collect_node_logs(suite: Any, report_dir: Path) -> Path | None:
    """Every node's logs (kind: `kind export logs`) into the report directory, once, after failures."""
    command = suite.handle.node_access.collect
    if not command:
        return None
    target = report_dir / "node-logs"
    result = run(
        [part.replace("{dir}", str(target)) for part in command], what="collect node logs", timeout=300, check=False
    )
    if result.returncode != 0:
        print(f"ivc: collecting node logs failed: {(result.stderr or result.stdout).strip()[-300:]}", file=sys.stderr)
        return None
    return target


# -- summary ----------------------------------------------------------------------------------
def write_summary(config: pytest.Config, terminalreporter: Any) -> None:
    from conformance.framework.plugin import SESSION_KEY

    collector = config.stash.get(VERDICTS_KEY, None)
    suite = config.stash.get(SESSION_KEY, None)
    if collector is None or suite is None:
        return
    verdicts = sorted(collector.verdicts.values(), key=lambda v: v.nodeid)
    counts = Counter((v.level, v.outcome) for v in verdicts)
    levels = ("required", KNOWN_DEFECT, "optional", "informational", "not-applicable", "unclassified")
    run_verdict = run_verdict_of(config)
    assert run_verdict is not None
    tr = terminalreporter
    tr.section("ImageVolume conformance verdict")
    tr.write_line(f"ivc verdict: {run_verdict.line()}")
    for level in levels:
        row = {o: counts[(level, o)] for o in OUTCOMES}
        if any(row.values()):
            tr.write_line(f"{level:>15}: " + ", ".join(f"{n} {o}" for o, n in row.items() if n))
    for verdict in verdicts:
        if verdict.observed:
            tr.write_line(f"observed {verdict.nodeid}: " + "; ".join(f"{k}={v}" for k, v in verdict.observed.items()))
        if verdict.outcome in ("failed", "error") and verdict.hint:
            tr.write_line(f"hint for {verdict.nodeid}: {verdict.hint}")
    report_dir = config.getoption("report_dir")
    if not report_dir:
        return
    out = Path(report_dir)
    out.mkdir(parents=True, exist_ok=True)
    caps = suite.capabilities
    data: dict[str, Any] = {
        "run_id": suite.run_id,
        "cluster": {
            "provider": suite.handle.provider,
            "description": suite.handle.description,
            "kubernetes": caps.server_version,
            "runtime": caps.runtime,
            "verdict": caps.feature_unavailable_reason() or "image volumes available",
            "header": caps.header_lines(),
            "runtime_probe": caps.mount_probe.as_dict() if caps.mount_probe else None,
        },
        "verdict": {"line": run_verdict.line(), "conformant": run_verdict.conformant, **vars(run_verdict)},
        "counts": {f"{level}/{outcome}": n for (level, outcome), n in sorted(counts.items())},
        "tests": [vars(v) for v in verdicts],
        "reproduce": reproduce_command(config),
    }
    (out / "summary.json").write_text(json.dumps(data, indent=2) + "\n")
    lines = [
        f"# ImageVolume conformance: run {suite.run_id}",
        "",
        f"- cluster: {suite.handle.provider} ({suite.handle.description})",
        f"- Kubernetes {caps.server_version}; runtime {caps.runtime}",
        f"- **verdict: {run_verdict.line()}**",
        f"- image volumes: {data['cluster']['verdict']}",
        *(f"- {line}" for line in caps.header_lines()),
        f"- reproduce: `{data['reproduce']}`",
        "",
        "| level | " + " | ".join(OUTCOMES) + " |",
        "|---" * (len(OUTCOMES) + 1) + "|",
    ]
    for level in levels:
        cells = [counts[(level, o)] for o in OUTCOMES]
        if any(cells):
            lines.append(f"| {level} | " + " | ".join(map(str, cells)) + " |")
    lines += ["", "| test | level | verdict | expectation source | detail |", "|---|---|---|---|---|"]
    for v in verdicts:
        detail = v.message + (f" — hint: {v.hint}" if v.hint else "")
        if v.observed:
            detail = "; ".join(f"{k}={val}" for k, val in v.observed.items())
        lines.append(f"| `{v.nodeid}` | {v.level} | {v.outcome} | {v.source} | {detail.replace('|', '/')} |")
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    tr.write_line(f"summary: {out / 'summary.md'}")


def reproduce_command(config: pytest.Config) -> str:
    return shlex.join(["pytest", *config.invocation_params.args])


def sweep_namespaces(suite: Any, label: str) -> None:
    """Delete whatever namespaces of this run survived (Ctrl-C, crashed workers)."""
    from conformance.framework.kube import Kube

    try:
        kube = Kube(suite.handle.kubeconfig, suite.handle.context)
        for name in kube.namespaces_with_label(f"{label}={suite.run_id}"):
            kube.delete_namespace(name)
    except Exception as error:  # noqa: BLE001 - cleanup is best effort and must say why it failed
        print(f"ivc: could not sweep namespaces of run {suite.run_id}: {error}", file=sys.stderr)


def print_artifact_list(config: pytest.Config) -> None:
    """Everything a run pushes, so an air-gapped user can pre-seed a registry."""
    from conformance.framework.artifacts import content_tag
    from conformance.oci import build
    from conformance.oci.node_images import PAUSE_REPOSITORY, PAUSE_TAG, SHELL_REPOSITORY, SHELL_TAG

    registry = config.getoption("registry") or "<registry>"
    print(f"{registry}/{SHELL_REPOSITORY}:{SHELL_TAG}  (container image: static busybox)")
    print(f"{registry}/{PAUSE_REPOSITORY}:{PAUSE_TAG}  (sandbox image, local provider only)")
    for name, entry in CATALOG.items():
        built = build(spec_of(entry))
        print(
            f"{registry}/{SHARED_REPOSITORY_PREFIX}/{name}:{content_tag(built.manifest_digest)}  "
            f"({built.manifest_digest}, {built.size()} bytes)"
        )
    print("plus per-test repositories under ivc/run-<run id>/ (pushed and deleted by the tests themselves)")
