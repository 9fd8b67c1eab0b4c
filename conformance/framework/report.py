"""The one place that explains results: per-failure diagnostics, the verdict, the run summary.

Workers collect diagnostics for their own failed tests (they hold the namespace); the controller
receives every report (xdist forwards them, user_properties included) and writes the summary once.
Nothing here reads pytest's stash: the plugin hands every function what it needs. Diagnostics never
mask a failure: each step is guarded, and a step that fails says so in the bundle.
"""

from __future__ import annotations

import html
import json
import re
import sys
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from itertools import pairwise
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from conformance.cluster.host import run
from conformance.framework.artifacts import CATALOG, SHARED_REPOSITORY_PREFIX, content_tag, spec_of
from conformance.framework.kube import Kube
from conformance.framework.session import SuiteSession
from conformance.oci import build
from conformance.oci.node_images import PAUSE_REPOSITORY, PAUSE_TAG, SHELL_REPOSITORY, SHELL_TAG

T = TypeVar("T")
KNOWN_DEFECT = "known-defect"
POD_PROPERTY = "ivc.pod"  # written by the fixtures (record_pod), one per Pod a test created
OUTCOMES = ("passed", "failed", "error", KNOWN_DEFECT, "skipped")
LEVELS = ("required", KNOWN_DEFECT, "optional", "informational", "not-applicable", "unclassified")


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
                parts.append(_count(self.known_defects, "known defect"))
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


def run_verdict(suite: SuiteSession, verdicts: list[Verdict]) -> RunVerdict:
    """The run's verdict from the controller's collected reports."""
    counts = Counter((v.level, v.outcome) for v in verdicts)
    defects = Counter(v.defect_of for v in verdicts if v.outcome == KNOWN_DEFECT)
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
    # One entry per Pod the test created: creation → Running in seconds, None when not awaited Running.
    pods: list[float | None] = field(default_factory=list)


class VerdictCollector:
    """Registered in the controller only: turns test reports into one verdict per test."""

    def __init__(self) -> None:
        self.verdicts: dict[str, Verdict] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        props = {key: str(value) for key, value in report.user_properties}
        pods = [float(str(v)) if v else None for k, v in report.user_properties if k == POD_PROPERTY]
        if report.when == "teardown" and report.nodeid in self.verdicts:
            self.verdicts[report.nodeid].pods = pods  # recorded as the test's Pods are deleted
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
            pods=pods,
        )


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.startswith("E "):
            return line[2:].strip()[:300]
    return (text.strip().splitlines() or [""])[-1][:300]


class LiveProgress:
    """Controller only: a line every `interval` seconds and at each failure, so a long run shows where it is."""

    def __init__(self, write: Callable[[str], None], interval: float = 15.0) -> None:
        self.write = write
        self.interval = interval
        self.total: int | None = None
        self.done = 0
        self.failed: set[str] = set()
        self.last = time.monotonic()

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        self.total = len(ids)

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.total = len(session.items)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        new_failure = report.failed and report.nodeid not in self.failed
        if new_failure:
            self.failed.add(report.nodeid)
        if report.when == "teardown":
            self.done += 1
        now = time.monotonic()
        if new_failure or now - self.last >= self.interval:
            self.last = now
            line = f"ivc progress: {self.done}/{self.total if self.total is not None else '?'} tests done, "
            line += f"{len(self.failed)} failed" + (f"; now failed: {report.nodeid}" if new_failure else "")
            self.write(line)


# -- rerunning what failed --------------------------------------------------------------------
def rerun_key(nodeid: str) -> str:
    """A test's id without where the package lives (a checkout, site-packages): test_x.py::test[param]."""
    path, _, rest = nodeid.partition("::")
    return f"{path.rsplit('conformance/', 1)[-1]}::{rest}"


def failed_tests(report_dir: Path) -> set[str]:
    """rerun_key of every failed or errored test in an earlier run's summary.json. Raises ValueError."""
    summary = report_dir / "summary.json"
    try:
        tests = json.loads(summary.read_text())["tests"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"--rerun-failed {report_dir}: no readable summary.json there ({error})") from None
    failed = {rerun_key(t["nodeid"]) for t in tests if t.get("outcome") in ("failed", "error")}
    if not failed:
        raise ValueError(f"--rerun-failed {report_dir}: nothing to rerun, no test failed in that run")
    return failed


# -- diagnostics ------------------------------------------------------------------------------
def _safe_name(nodeid: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid)[-150:]


class _Bundle:
    """Diagnostics written step by step; a step that fails is noted, and the next one still runs."""

    def __init__(self, target: Path | None) -> None:
        self.target = target
        self.summary: list[str] = []
        self.failures: list[str] = []

    def step(self, what: str, action: Callable[[], T]) -> T | None:
        """The action's result, or None when it failed (noted in the bundle)."""
        try:
            return action()
        except Exception as error:  # noqa: BLE001 - diagnostics must never mask the test's failure
            self.failures.append(f"diagnostics failed: {what}: {type(error).__name__}: {error}".splitlines()[0])
            return None

    def write(self, name: str, text: str) -> None:
        if self.target is not None:
            self.target.mkdir(parents=True, exist_ok=True)
            (self.target / name).write_text(text)


def diagnostics_dir(report_dir: str, nodeid: str) -> Path:
    return Path(report_dir) / "diagnostics" / _safe_name(nodeid)


def collect_diagnostics(suite: SuiteSession, nodeid: str, namespaces: list[str], report_dir: str | None) -> str:
    """Describe every Pod in the test's namespaces (returned, for the report's section) and, with a
    report directory, dump Pods, events, container logs and the node side under diagnostics/<test>/."""
    bundle = _Bundle(diagnostics_dir(report_dir, nodeid) if report_dir else None)
    kube = bundle.step("API client", partial(Kube, suite.handle.kubeconfig, suite.handle.context))
    nodes: set[str] = set()
    if kube is not None:
        for namespace in namespaces:
            bundle.step(f"namespace {namespace}", partial(_namespace, bundle, kube, namespace, nodes))
    if bundle.target is not None:
        _node_side_diagnostics(bundle, suite, namespaces, nodes)
        bundle.summary.append(f"full diagnostics: {bundle.target}")
    if bundle.failures:
        bundle.write("diagnostics-failed.txt", "\n".join(bundle.failures) + "\n")
    return "\n".join(bundle.summary + bundle.failures)


def _namespace(bundle: _Bundle, kube: Kube, namespace: str, nodes: set[str]) -> None:
    pods = kube.list_pods(namespace)
    for pod in pods:
        bundle.summary.append(kube.describe_pod(pod))
        if pod["spec"].get("nodeName"):
            nodes.add(pod["spec"]["nodeName"])
    if bundle.target is None:
        return
    bundle.write(f"{namespace}.pods.yaml", yaml.safe_dump_all(pods, sort_keys=False))
    events = kube.events(namespace)
    bundle.write(
        f"{namespace}.events.txt",
        "".join(
            f"{e.get('firstTimestamp') or e.get('eventTime')} {e.get('type')} {e.get('reason')} "
            f"{e.get('involvedObject', {}).get('name')}: {e.get('message', '')}\n"
            for e in events
        ),
    )
    for pod in pods:
        pod_name = pod["metadata"]["name"]
        for container in pod["spec"].get("containers", []) + pod["spec"].get("initContainers", []):
            bundle.step(
                f"log of {pod_name}/{container['name']}",
                partial(_container_log, bundle, kube, namespace, pod_name, container["name"]),
            )


def _container_log(bundle: _Bundle, kube: Kube, namespace: str, pod: str, container: str) -> None:
    bundle.write(f"{pod}.{container}.log", kube.pod_log(namespace, pod, container))


def _node_side_diagnostics(bundle: _Bundle, suite: SuiteSession, namespaces: list[str], nodes: set[str]) -> None:
    """On each node the test's Pods ran on: the runtime's and kubelet's log lines about the test's
    namespaces (plus a tail for context) and `crictl info`, where the provider gives node access."""
    access = suite.handle.node_access

    def logs(node: str, component: str, command: tuple[str, ...]) -> None:
        result = run(access.on(node, *command), what=f"{component} log on {node}", timeout=60, check=False)
        lines = result.stdout.splitlines()
        about = [line for line in lines if any(namespace in line for namespace in namespaces)]
        bundle.write(f"{node}.{component}.about-test.log", "\n".join(about[-500:]) + "\n")
        bundle.write(f"{node}.{component}.tail.log", "\n".join(lines[-200:]) + "\n")

    def crictl_info(node: str, crictl: str) -> None:
        result = run(access.on(node, crictl, "info"), what=f"crictl info on {node}", timeout=30, check=False)
        bundle.write(f"{node}.crictl-info.json", result.stdout or result.stderr)

    for node in sorted(nodes):
        for component, command in access.logs.items():
            bundle.step(f"{component} log on {node}", partial(logs, node, component, command))
        if access.crictl:
            bundle.step(f"crictl info on {node}", partial(crictl_info, node, access.crictl))


def collect_node_logs(suite: SuiteSession, report_dir: Path) -> Path | None:
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
def stage_seconds(ends: dict[str, float]) -> dict[str, float]:
    """{"start": t0, "cluster": t1, …} (monotonic ends, in order) → seconds each stage took."""
    return {name: round(ends[name] - ends[previous], 2) for previous, name in pairwise(ends)}


def write_summary(
    terminalreporter: Any,
    suite: SuiteSession,
    collected: list[Verdict],
    report_dir: str | None,
    reproduce: str,
    stages: dict[str, float],
) -> None:
    """The verdict on the terminal; summary.json/md in `report_dir`. `stages`: seconds of the run's
    stages so far (cluster, session: artifacts and probe, tests)."""
    verdicts = sorted(collected, key=lambda v: v.nodeid)
    counts = Counter((v.level, v.outcome) for v in verdicts)
    outcome = run_verdict(suite, verdicts)
    tr = terminalreporter
    tr.section("ImageVolume conformance verdict")
    tr.write_line(f"ivc verdict: {outcome.line()}")
    for level in LEVELS:
        row = {o: counts[(level, o)] for o in OUTCOMES}
        if any(row.values()):
            tr.write_line(f"{level:>15}: " + ", ".join(f"{n} {o}" for o, n in row.items() if n))
    for verdict in verdicts:
        if verdict.observed:
            tr.write_line(f"observed {verdict.nodeid}: " + "; ".join(f"{k}={v}" for k, v in verdict.observed.items()))
        if verdict.outcome in ("failed", "error") and verdict.hint:
            tr.write_line(f"hint for {verdict.nodeid}: {verdict.hint}")
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
        "verdict": {"line": outcome.line(), "conformant": outcome.conformant, **vars(outcome)},
        "counts": {f"{level}/{outcome}": n for (level, outcome), n in sorted(counts.items())},
        "tests": [vars(v) for v in verdicts],
        "stages": stages,
        "reproduce": reproduce,
    }
    (out / "summary.json").write_text(json.dumps(data, indent=2) + "\n")
    lines = [
        f"# ImageVolume conformance: run {suite.run_id}",
        "",
        f"- cluster: {suite.handle.provider} ({suite.handle.description})",
        f"- Kubernetes {caps.server_version}; runtime {caps.runtime}",
        f"- **verdict: {outcome.line()}**",
        f"- image volumes: {data['cluster']['verdict']}",
        *(f"- {line}" for line in caps.header_lines()),
        f"- reproduce: `{data['reproduce']}`",
        "",
        "| level | " + " | ".join(OUTCOMES) + " |",
        "|---" * (len(OUTCOMES) + 1) + "|",
    ]
    for level in LEVELS:
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


def html_summary(suite: SuiteSession, collected: list[Verdict]) -> list[str]:
    """The opening of pytest-html's report: the verdict, the cluster, the counts (HTML fragments)."""
    outcome = run_verdict(suite, collected)
    colour = "#1a7f37" if outcome.conformant else "#cf222e"
    counts = Counter((v.level, v.outcome) for v in collected)
    rows = "".join(
        f"<tr><td>{level}</td>" + "".join(f"<td>{counts[level, o]}</td>" for o in OUTCOMES) + "</tr>"
        for level in LEVELS
        if any(counts[level, o] for o in OUTCOMES)
    )
    header = "".join(f"<li>{html.escape(line)}</li>" for line in suite.capabilities.header_lines())
    return [
        f'<h2 id="ivc-verdict" style="color:{colour}">{html.escape(outcome.line())}</h2>',
        f"<p>Run {suite.run_id}: {html.escape(suite.handle.provider)} cluster "
        f"({html.escape(suite.handle.description)})</p>",
        f"<ul>{header}</ul>",
        "<table><tr><th>level</th>" + "".join(f"<th>{o}</th>" for o in OUTCOMES) + f"</tr>{rows}</table>",
        "<p>Each failed test links its diagnostics (Pods, events, container, runtime and kubelet logs).</p>",
    ]


def sweep_namespaces(suite: SuiteSession, label: str) -> str | None:
    """Delete the run's namespaces (tests leave theirs to this sweep; Ctrl-C and crashed workers leave some
    anyway), without waiting for the namespace controller; why it failed, if it did."""
    try:
        kube = Kube(suite.handle.kubeconfig, suite.handle.context)
        with ThreadPoolExecutor(max_workers=8) as pool:  # one round trip each: overlap them
            list(pool.map(kube.delete_namespace, kube.namespaces_with_label(f"{label}={suite.run_id}")))
    except Exception as error:  # noqa: BLE001 - cleanup is best effort and must say why it failed
        return f"could not sweep the namespaces of run {suite.run_id}: {error}"
    return None


def print_artifact_list(registry: str) -> None:
    """Everything a run pushes, so an air-gapped user can pre-seed a registry."""
    print(f"{registry}/{SHELL_REPOSITORY}:{SHELL_TAG}  (container image: static busybox)")
    print(f"{registry}/{PAUSE_REPOSITORY}:{PAUSE_TAG}  (sandbox image, local provider only)")
    for name, entry in CATALOG.items():
        built = build(spec_of(entry))
        print(
            f"{registry}/{SHARED_REPOSITORY_PREFIX}/{name}:{content_tag(built.manifest_digest)}  "
            f"({built.manifest_digest}, {built.size()} bytes)"
        )
    print("plus per-test repositories under ivc/run-<run id>/ (pushed and deleted by the tests themselves)")
