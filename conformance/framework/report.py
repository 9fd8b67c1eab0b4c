"""The results of the run and its summary (terminal, JSON, Markdown, HTML).

The controller receives every report (xdist forwards them, user_properties included), turns them
into `Result`s, and writes the summary once, with the verdict (verdict.py). Nothing here reads
pytest's stash: the plugin hands every function what it needs. Diagnostics of failed tests are
diagnostics.py's.
"""

from __future__ import annotations

import html
import json
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from itertools import pairwise
from pathlib import Path
from typing import Any, TypeVar

import pytest

from conformance.framework.session import SuiteSession
from conformance.framework.verdict import BLOCKED, KNOWN_DEFECT, Result, RunVerdict
from conformance.infra.files import write_atomic

T = TypeVar("T")
POD_PROPERTY = "ivc.pod"  # written by the fixtures (record_pod), one per Pod a test created
BLOCKED_PROPERTY = "ivc.blocked"  # the registry's or the cluster's fault that kept a test from running
DEFECT_NOT_SEEN_PROPERTY = "ivc.defect_not_seen"  # a known defect's test passed
OUTCOMES = ("passed", "failed", "error", KNOWN_DEFECT, BLOCKED, "skipped", "not-run")
LEVELS = ("required", KNOWN_DEFECT, "optional", "informational", "not-applicable", "unclassified")


class ResultCollector:
    """Registered in the controller only: turns test reports into one `Result` per test."""

    def __init__(self) -> None:
        self.results: dict[str, Result] = {}
        self.seconds: dict[str, float] = {}  # the test body's, per test
        self.spans: dict[str, tuple[float, float]] = {}  # wall clock, from its setup's start to its teardown's end

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        props = {key: str(value) for key, value in report.user_properties}
        pods = [float(str(v)) if v else None for k, v in report.user_properties if k == POD_PROPERTY]
        if report.when == "call":
            self.seconds[report.nodeid] = round(report.duration, 3)
        if report.start:  # a crashed worker's test has no times
            began, ended = self.spans.get(report.nodeid, (report.start, report.stop))
            self.spans[report.nodeid] = (min(began, report.start), max(ended, report.stop))
            if report.nodeid in self.results:
                self.results[report.nodeid].span = self.spans[report.nodeid]
        if report.when == "teardown" and report.nodeid in self.results:
            self.results[report.nodeid].pods = pods  # recorded as the test's Pods are deleted
        outcome: str = report.outcome
        if report.when != "call" and outcome == "failed":
            outcome = "error"  # a fixture's failure, or a crashed worker's test (when "???")
        elif report.when != "call" and outcome == "passed":
            return  # setup/teardown passing says nothing new
        previous = self.results.get(report.nodeid)
        if previous and previous.outcome in ("failed", "error"):
            return  # a teardown pass must not hide the call's failure
        message = ""
        if BLOCKED_PROPERTY in props:
            outcome, message = BLOCKED, props[BLOCKED_PROPERTY]
        elif report.skipped and hasattr(report, "wasxfail"):
            outcome, message = KNOWN_DEFECT, str(report.wasxfail)  # a known defect, as the table says
        elif report.failed:
            message = _first_line(report.longreprtext)
        elif report.skipped:
            message = skip_reason(report)
        self.results[report.nodeid] = Result(
            nodeid=report.nodeid,
            outcome=outcome,
            message=message,
            level=props.get("ivc.level", ""),
            behaviour=props.get("ivc.behaviour", ""),
            group=props.get("ivc.group", ""),
            source=props.get("ivc.source", ""),
            hint=props.get("ivc.hint", ""),
            defect_of=props.get("ivc.defect_of", ""),
            defect_not_seen=props.get(DEFECT_NOT_SEEN_PROPERTY, ""),
            observed={k.removeprefix("ivc.observed."): v for k, v in props.items() if k.startswith("ivc.observed.")},
            pods=pods,
            seconds=self.seconds.get(report.nodeid, 0.0),
            span=self.spans.get(report.nodeid, (0.0, 0.0)),
            disruptive=bool(props.get("ivc.disruptive")),
        )


def skip_reason(report: pytest.TestReport) -> str:
    """A skip's reason as text (pytest keeps it as (path, line, 'Skipped: …'))."""
    if isinstance(report.longrepr, tuple):
        return str(report.longrepr[2]).removeprefix("Skipped: ")
    return str(report.longrepr or "")


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


RERUN_OUTCOMES = ("failed", "error", BLOCKED)


@dataclass(frozen=True)
class EarlierRun:
    """What an earlier run's summary.json says: its cluster, and each test's result (by `rerun_key`)."""

    directory: Path
    run_id: str
    identity: Mapping[str, Any]
    results: Mapping[str, Result]

    def to_rerun(self) -> set[str]:
        """Every test that failed, errored or was blocked there."""
        return {key for key, result in self.results.items() if result.outcome in RERUN_OUTCOMES}


def earlier_run(report_dir: Path) -> EarlierRun:
    """Read the summary.json of the run that wrote `report_dir`. Raises ValueError (one line)."""
    summary = report_dir / "summary.json"
    try:
        data = json.loads(summary.read_text())
        tests = data["tests"]
        known = set(Result.__dataclass_fields__)
        results = {rerun_key(t["nodeid"]): Result(**{k: v for k, v in t.items() if k in known}) for t in tests}
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"--rerun-failed {report_dir}: no readable summary.json there ({error})") from None
    earlier = EarlierRun(report_dir, data.get("run_id", "?"), data.get("cluster", {}).get("identity", {}), results)
    if not earlier.to_rerun():
        raise ValueError(f"--rerun-failed {report_dir}: nothing to rerun, no test failed, errored or was blocked there")
    return earlier


def merged_results(results: Mapping[str, Result], earlier: EarlierRun | None) -> dict[str, Result]:
    """This run's results, and the earlier run's for every test not run again (marked with its run id)."""
    merged = dict(results)
    if earlier is None:
        return merged
    rerun = {rerun_key(nodeid) for nodeid, result in results.items() if result.outcome != "not-run"}
    by_key = {rerun_key(nodeid): nodeid for nodeid in results}
    for key, result in earlier.results.items():
        if key in rerun:
            continue
        nodeid = by_key.get(key, result.nodeid)
        merged[nodeid] = replace(result, nodeid=nodeid, from_run=result.from_run or earlier.run_id)
    return merged


# -- summary ----------------------------------------------------------------------------------
def stage_seconds(ends: dict[str, float]) -> dict[str, float]:
    """{"start": t0, "cluster": t1, …} (monotonic ends, in order) → seconds each stage took."""
    return {name: round(ends[name] - ends[previous], 2) for previous, name in pairwise(ends)}


def summary_data(
    suite: SuiteSession,
    verdict: RunVerdict,
    results: Mapping[str, Result],
    reproduce: str,
    stages: dict[str, float],
    asked: str,
) -> dict[str, Any]:
    caps = suite.capabilities
    counts = Counter((r.level or "unclassified", r.outcome) for r in results.values())
    return {
        "run_id": suite.run_id,
        "cluster": {
            "provider": suite.handle.provider,
            "description": suite.handle.description,
            "asked": asked,
            "kubernetes": caps.server_version,
            "runtime": caps.runtime,
            "identity": caps.identity(),
            "node_groups": [
                {
                    "id": group.id,
                    "label": group.label(),
                    "nodes": list(group.nodes),
                    "runtime_probe": caps.probes[group.id].as_dict() if group.id in caps.probes else None,
                    "unavailable": caps.group_unavailable_reason(group.id),
                }
                for group in caps.groups
            ],
            "verdict": caps.cluster_unavailable_reason() or "image volumes available",
            "header": caps.header_lines(),
        },
        "verdict": {
            "line": verdict.line(),
            "state": verdict.state,
            "conformant": verdict.conformant,
            "required_total": verdict.required_total,
            "scopes": [
                {
                    "scope": s.scope,
                    "label": s.label,
                    "unavailable": s.unavailable,
                    "failed": s.failed,
                    "known_defects": s.known_defects,
                    "not_run": s.not_run,
                }
                for s in verdict.scopes
            ],
            "optional_failed": verdict.optional_failed,
            "optional_known_defects": verdict.optional_known_defects,
            "informational_failed": verdict.informational_failed,
            "defects_not_seen": verdict.defects_not_seen,
            "partial_selection": verdict.partial_selection,
        },
        "counts": {f"{level}/{outcome}": n for (level, outcome), n in sorted(counts.items())},
        "tests": [results[nodeid].as_dict() for nodeid in sorted(results)],
        "stages": stages,
        "reproduce": reproduce,
    }


def write_summary(terminalreporter: Any, data: Mapping[str, Any], report_dir: str | None) -> None:
    """The verdict on the terminal; summary.json/md in `report_dir` (`data` from `summary_data`)."""
    tr = terminalreporter
    verdict = data["verdict"]
    tr.section("ImageVolume conformance verdict")
    tr.write_line(f"ivc verdict: {verdict['line']}")
    tests = data["tests"]
    counts = Counter((t["level"] or "unclassified", t["outcome"]) for t in tests)
    for level in LEVELS:
        row = {o: counts[(level, o)] for o in OUTCOMES}
        if any(row.values()):
            tr.write_line(f"{level:>15}: " + ", ".join(f"{n} {o}" for o, n in row.items() if n))
    for scope in verdict["scopes"]:
        for key, why in list(scope["not_run"].items())[:20]:
            tr.write_line(f"did not run [{scope['scope']}] {key}: {why}")
    for test in tests:
        if test["observed"]:
            tr.write_line(f"observed {test['nodeid']}: " + "; ".join(f"{k}={v}" for k, v in test["observed"].items()))
        if test["outcome"] in ("failed", "error") and test["hint"]:
            tr.write_line(f"hint for {test['nodeid']}: {test['hint']}")
        if test["defect_not_seen"]:
            tr.write_line(f"known defect not seen in {test['nodeid']}: {test['defect_not_seen']}")
    if not report_dir:
        return
    out = Path(report_dir)
    write_atomic(out / "summary.json", json.dumps(data, indent=2) + "\n")
    write_atomic(out / "summary.md", summary_markdown(data))
    tr.write_line(f"summary: {out / 'summary.md'}")


def summary_markdown(data: Mapping[str, Any]) -> str:
    cluster, verdict = data["cluster"], data["verdict"]
    lines = [
        f"# ImageVolume conformance: run {data['run_id']}",
        "",
        f"- cluster: {cluster['provider']} ({cluster['description']})",
        f"- asked: {cluster['asked']}",
        f"- Kubernetes {cluster['kubernetes']}; runtime {cluster['runtime']}",
        f"- **verdict: {verdict['line']}**",
        f"- image volumes: {cluster['verdict']}",
        *(f"- {line}" for line in cluster["header"]),
        f"- reproduce: `{data['reproduce']}`",
        "",
        "| level | " + " | ".join(OUTCOMES) + " |",
        "|---" * (len(OUTCOMES) + 1) + "|",
    ]
    counts = Counter((t["level"] or "unclassified", t["outcome"]) for t in data["tests"])
    for level in LEVELS:
        cells = [counts[(level, o)] for o in OUTCOMES]
        if any(cells):
            lines.append(f"| {level} | " + " | ".join(map(str, cells)) + " |")
    lines += ["", "| test | node group | level | result | expectation source | detail |", "|---|---|---|---|---|---|"]
    for t in data["tests"]:
        detail = t["message"] + (f" — hint: {t['hint']}" if t["hint"] else "")
        if t["observed"]:
            detail = "; ".join(f"{k}={val}" for k, val in t["observed"].items())
        if t["from_run"]:
            detail = f"(from run {t['from_run']}) {detail}"
        row = [f"`{t['nodeid']}`", t["group"], t["level"], t["outcome"], t["source"], detail]
        lines.append("| " + " | ".join(str(cell).replace("|", "/") for cell in row) + " |")
    not_run: list[tuple[str, str, str]] = [
        (s["scope"], key, why) for s in verdict["scopes"] for key, why in s["not_run"].items()
    ]
    if not_run:
        lines += ["", "## Required checks that did not run", "", "| scope | check | why |", "|---|---|---|"]
        lines += [f"| {scope} | `{key}` | {why.replace('|', '/')} |" for scope, key, why in not_run]
    return "\n".join(lines) + "\n"


def html_summary(data: Mapping[str, Any]) -> list[str]:
    """The opening of pytest-html's report: the verdict, the cluster, the counts (HTML fragments)."""
    verdict = data["verdict"]
    colour = {"CONFORMANT": "#1a7f37", "INCOMPLETE": "#9a6700"}.get(verdict["state"], "#cf222e")
    counts = Counter((t["level"] or "unclassified", t["outcome"]) for t in data["tests"])
    rows = "".join(
        f"<tr><td>{level}</td>" + "".join(f"<td>{counts[level, o]}</td>" for o in OUTCOMES) + "</tr>"
        for level in LEVELS
        if any(counts[level, o] for o in OUTCOMES)
    )
    header = "".join(f"<li>{html.escape(line)}</li>" for line in data["cluster"]["header"])
    cluster = data["cluster"]
    return [
        f'<h2 id="ivc-verdict" style="color:{colour}">{html.escape(verdict["line"])}</h2>',
        f"<p>Run {data['run_id']}: {html.escape(cluster['provider'])} cluster "
        f"({html.escape(cluster['description'])}); asked: {html.escape(cluster['asked'])}</p>",
        f"<ul>{header}</ul>",
        "<table><tr><th>level</th>" + "".join(f"<th>{o}</th>" for o in OUTCOMES) + f"</tr>{rows}</table>",
        "<p>Each failed test links its diagnostics (Pods, events, container, runtime and kubelet logs).</p>",
    ]
