"""pytest hooks only: options, markers, header, the xdist controller/worker handoff, verdicts.

Data flow (one direction):
  controller: options → provider → cluster handle → capabilities (node groups) → artifacts pushed,
              runtime probed per node group → workers
  worker:     collection (each node-deciding test once per node group) → per test, expectation lookup
              → namespace → Pod → observe → assert
  controller: results + what was collected → the run's verdict (verdict.py) → summary, exit status
              → teardown of what this run created
The controller is the process without `workerinput` (or the only process without xdist).
"""

from __future__ import annotations

import html
import importlib.util
import json
import os
import re
import shlex
import sys
import time
import warnings
from collections.abc import Generator
from functools import partial
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from pytest_html import extras as html_extras

import conformance
from conformance.cluster import make_provider
from conformance.cluster.contract import ClusterHandle
from conformance.cluster.options import DEFAULT_PROVIDER, OPTIONS, PROVIDERS, ClusterOptions, option_strings
from conformance.cluster.options import add_to as add_cluster_options
from conformance.cluster.registries import named_registry
from conformance.framework import diagnostics, report
from conformance.framework.artifacts import print_artifact_list
from conformance.framework.capabilities import Capabilities
from conformance.framework.diagnosis import EnvironmentProblem
from conformance.framework.expectations import (
    Level,
    NoRow,
    behaviours,
    decided_by,
    known_defect_reason,
    lookup_on,
    runtime_notes,
)
from conformance.framework.keys import (
    EARLIER_RUN_KEY,
    EXPECTATION_KEY,
    HANDLE_KEY,
    MOUNTS_EXCLUSIVE_FIXTURE,
    NAMESPACES_KEY,
    NODE_FIXTURES,
    NODES_EXCLUSIVE_FIXTURE,
    PROVIDER_KEY,
    RESULTS_KEY,
    SESSION_KEY,
    STAGES_KEY,
    TORN_DOWN_KEY,
    UNDISRUPTIVE_KEY,
    VERDICT_KEY,
)
from conformance.framework.known_issues import hints_for
from conformance.framework.report import skip_reason
from conformance.framework.run_directory import remove_run_directory, run_directory
from conformance.framework.run_locks import RunProgress
from conformance.framework.session import SuiteSession, end_session, new_run_id, preseed, start_session
from conformance.framework.verdict import Check, Result, RunVerdict, run_verdict
from conformance.infra.errors import ClusterError
from conformance.infra.files import write_atomic
from conformance.infra.kube import Kube
from conformance.infra.progress import progress

# Loaded through the pytest11 entry point (or `-p conformance.framework.plugin`): the fixtures come along.
pytest_plugins = ("conformance.framework.fixtures",)

WORKER_INPUT = "ivc_session"
COLLECTION_RECORD = "collection.json"  # in the run directory: every conformance test as collected

MARKERS = {
    "behaviour(name)": "the behaviour from conformance/framework/expectations.py this test checks; the table "
    "decides whether it applies to the cluster (per node group, for what a kubelet decides) and how it is classified",
    "pod_security(level)": "the Pod Security level (restricted, baseline, privileged) the test's namespace enforces "
    "and its Pods are shaped for; default: restricted where the apiserver's restricted admits image volumes",
    "conformance": "equivalent of a Kubernetes [Conformance] test for ImageVolume (GA in 1.36)",
    "slow": "seconds where most tests take a fraction of one (Pods one after another, a node-side teardown, a "
    "large pull): started first, so xdist workers finish together. Deselecting them makes the run INCOMPLETE",
    "runs_without_feature": "runs even when image volumes are unavailable (the session-level verdict itself)",
    "disruptive": "restarts a node's kubelet or runtime (clusters the suite built only): runs last, with the nodes "
    "to itself (the run's other tests wait). Deselecting them makes the run INCOMPLETE",
}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("ivc", "ImageVolume conformance")
    group.addoption(
        "--cluster",
        choices=list(PROVIDERS),
        default=DEFAULT_PROVIDER,
        help="how to obtain the cluster: kind (CRI-O node image, default), existing (kubeconfig), "
        "local (offline host processes, as CI)",
    )
    add_cluster_options(group.addoption)
    group.addoption("--keep-cluster", action="store_true", help="leave a cluster this run created running")
    group.addoption(
        "--reuse-cluster",
        action="store_true",
        help="require a running cluster from an earlier `up`/--keep-cluster; fail fast if none",
    )
    group.addoption(
        "--require-feature",
        action="store_true",
        help="fail the run (instead of skipping) when image volumes are unavailable",
    )
    group.addoption(
        "--accept-known-defects",
        action="store_true",
        help="exit 0 when the only failures are the table's known defects (the verdict still says NOT CONFORMANT)",
    )
    group.addoption(
        "--report-dir",
        default=None,
        help="write junit, summary.md/json and diagnostics here (with --html: beside the HTML report)",
    )
    group.addoption(
        "--rerun-failed",
        metavar="REPORT_DIR",
        default=None,
        help="run again the tests that failed, errored or were blocked in the run that wrote REPORT_DIR, and "
        "judge the run with that run's other results (a full verdict)",
    )
    group.addoption(
        "--capability-report",
        action="store_true",
        help="probe each node group (image volumes, subPath, OCI artifacts), print the table (JSON in "
        "--report-dir/capabilities.json), and exit without running tests",
    )
    group.addoption(
        "--push-artifacts",
        action="store_true",
        help="push every image and artifact a run needs to --registry (with --pull-secret/--registry-ca), then "
        "exit: pre-seeds an air-gapped registry in one step",
    )
    group.addoption(
        "--list-artifacts",
        action="store_true",
        help="print every image and artifact the run needs, then exit (for air-gapped registries)",
    )


# Per test: a hung API call must not stall a run. Here, not in an ini file, so an installed suite has it too.
TEST_TIMEOUT_SECONDS = 600.0


# This plugin's options that take a value, which may be a path.
VALUE_OPTIONS = frozenset({"--report-dir", "--rerun-failed", *(o.flag for o in OPTIONS if not o.switch)})


def _rootdir_taken_from_an_option(config: pytest.Config) -> str | None:
    """pytest picks its rootdir and configuration from the command line's paths before it knows this plugin's
    options, so an existing path outside the current directory in `--kubeconfig /path` (space-separated)
    moves the rootdir there: no pyproject.toml, no testpaths, other tests collected. Found, it is one line
    saying how to write it."""
    invocation = config.invocation_params.dir
    args = [str(arg) for arg in config.invocation_params.args]
    for flag, value in pairwise(args):
        path = (invocation / value).resolve()
        if flag in VALUE_OPTIONS and path.exists() and not path.is_relative_to(invocation.resolve()):
            return (
                f"ivc: write {flag}={value} (with '='): pytest takes a path after a space for a test path and "
                f"looks for its rootdir and configuration there (it chose {config.rootpath})"
            )
    return None


@pytest.hookimpl(tryfirst=True)  # before pytest-timeout reads its settings
def pytest_configure(config: pytest.Config) -> None:
    if misplaced := _rootdir_taken_from_an_option(config):
        raise pytest.UsageError(misplaced)
    if (
        config.pluginmanager.has_plugin("timeout")
        and config.getoption("timeout") is None
        and not config.getini("timeout")
    ):
        config.option.timeout = TEST_TIMEOUT_SECONDS
    for marker, doc in MARKERS.items():
        config.addinivalue_line("markers", f"{marker}: {doc}")
    if getattr(config.option, "maxschedchunk", False) is None:
        # xdist's load scheduling hands a worker up to an eighth of what is left at once: with tests of
        # 0.1 to 10 s, one worker sat on a queue of slow ones while the others were done. One at a time.
        config.option.maxschedchunk = 1
    if getattr(config.option, "htmlpath", None) and not config.getoption("report_dir"):
        # Diagnostics beside the HTML report, so that each failure can link its own.
        config.option.report_dir = str(Path(config.option.htmlpath).parent)
    if config.getoption("report_dir") and not config.option.xmlpath:
        config.option.xmlpath = str(Path(config.getoption("report_dir")) / "junit_01.xml")
    if rerun := config.getoption("rerun_failed"):
        try:
            config.stash[EARLIER_RUN_KEY] = report.earlier_run(Path(rerun))
        except ValueError as error:
            raise pytest.UsageError(f"ivc: {error}") from None
    if _is_controller(config):
        collector = config.stash[RESULTS_KEY] = report.ResultCollector()
        config.pluginmanager.register(collector, "ivc-results")
        config.pluginmanager.register(report.LiveProgress(partial(_write_line, config)), "ivc-progress")
        config.pluginmanager.register(HtmlReport(config), "ivc-html")
        config.pluginmanager.register(FinishedTests(config), "ivc-finished")
    worker_input = getattr(config, "workerinput", None)
    if worker_input and WORKER_INPUT in worker_input:
        config.stash[SESSION_KEY] = SuiteSession.from_json(worker_input[WORKER_INPUT])


def _write_line(config: pytest.Config, line: str) -> None:
    # Looked up when writing: the terminal reporter registers itself after this plugin's configure.
    terminal = config.pluginmanager.get_plugin("terminalreporter")
    if terminal is None:
        return
    if getattr(terminal._tw, "width_of_current_line", 0):  # xdist's progress dots: start a line of our own
        terminal.write("\n")
    terminal.write_line(line)


def _is_controller(config: pytest.Config) -> bool:
    return not hasattr(config, "workerinput")


class FinishedTests:
    """Registered in the controller only (it sees every worker's reports): records each test as it ends
    ("???": its worker crashed), for the restarts to wait on (run_locks.RunProgress)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.failures = 0

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        suite = self.config.stash.get(SESSION_KEY, None)
        if suite is None:
            return
        progress = RunProgress(suite.run_id)
        if report.when in ("teardown", "???"):
            progress.finished(report.nodeid)
        self.failures += report.failed
        if (maxfail := self.config.option.maxfail) and self.failures >= maxfail:
            progress.stopping()  # pytest stops at this failure: what is still queued never finishes


# The conformance tests are this package's test_*.py, wherever it is installed (a checkout, site-packages).
CONFORMANCE_DIR = Path(conformance.__file__).resolve().parent


def _argument_path(config: pytest.Config, arg: str) -> Path:
    """The file or directory a command-line argument names (a module name with --pyargs)."""
    target = arg.split("::", 1)[0]
    if config.option.pyargs:
        try:
            spec = importlib.util.find_spec(target)
        except (ImportError, ValueError):
            spec = None
        if spec is not None and spec.origin:
            origin = Path(spec.origin).resolve()
            return origin.parent if origin.name == "__init__.py" else origin
    return (config.invocation_params.dir / target).resolve()


def _selects_conformance(config: pytest.Config) -> bool:
    """Only start a cluster when conformance tests can be selected (not for unit tests or --help)."""
    if config.option.collectonly or config.option.help or config.getoption("list_artifacts"):
        return False
    for arg in config.args:
        path = _argument_path(config, arg)
        # The package itself, a file in it, or a directory above it (a checkout's root).
        if path == CONFORMANCE_DIR or path in CONFORMANCE_DIR.parents or CONFORMANCE_DIR in path.parents:
            return True
    return False


def partial_selection(config: pytest.Config) -> str:
    """Why the command line itself narrows the suite (single files or tests), or ""."""
    narrowed = []
    for arg in config.args:
        path = _argument_path(config, arg)
        if path == CONFORMANCE_DIR or path in CONFORMANCE_DIR.parents:
            if "::" not in arg:
                return ""  # the whole package is on the command line
        elif CONFORMANCE_DIR in path.parents:
            narrowed.append(arg)
    return f"the command line selects part of the suite ({', '.join(narrowed)})" if narrowed else ""


def asked(config: pytest.Config) -> str:
    """What the user asked for: the cluster options given on the command line."""
    given_options = [
        o.flag if o.switch else f"{o.flag} {shlex.quote(getattr(config.option, o.dest))}"
        for o in OPTIONS
        if getattr(config.option, o.dest)
    ]
    return f"--cluster={config.getoption('cluster')}" + (f" {' '.join(given_options)}" if given_options else "")


def _obtain_cluster(config: pytest.Config, options: ClusterOptions) -> ClusterHandle:
    provider = make_provider(options)
    config.stash[PROVIDER_KEY] = provider
    running = provider.running_handle()  # refuses, in one line, a running cluster other than the one asked for
    if running is not None:
        whose = "this run takes it down after" if running.created_by_run else "it stays up after the run"
        progress(f"reusing the running {provider.name} cluster ({running.description}); {whose}")
        return running
    if config.getoption("reuse_cluster"):
        raise ClusterError(
            f"--reuse-cluster: no running {provider.name} cluster found; start one with "
            f"`python -m conformance.cluster up --provider {provider.name}`"
        )
    progress(f"bringing up a {provider.name} cluster for this run")
    return provider.up(keep=config.getoption("keep_cluster"))


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    config = session.config
    if config.getoption("list_artifacts"):
        print_artifact_list(config.getoption("registry") or "<registry>")
        pytest.exit("listed the artifacts this run needs", returncode=0)
    if config.getoption("push_artifacts"):
        _push_artifacts(config)
    if not _is_controller(config) or not (_selects_conformance(config) or config.getoption("capability_report")):
        return
    stages = config.stash[STAGES_KEY] = {"start": time.monotonic()}
    try:
        options = ClusterOptions.parse(config.getoption("cluster"), option_strings(config.option))
        handle = config.stash[HANDLE_KEY] = _obtain_cluster(config, options)
        stages["cluster"] = time.monotonic()
        suite = start_session(handle, new_run_id(), cache_dir=options.cache_dir)
        stages["session"] = time.monotonic()
    except ClusterError as error:
        _teardown_now(config)
        # UsageError is the one channel pytest prints as a single "ERROR: …" line, without traceback.
        raise pytest.UsageError(f"ivc: {error}") from None
    except BaseException:  # Ctrl-C or a bug of ours: still leave nothing behind, then let it surface
        _teardown_now(config)
        raise
    config.stash[SESSION_KEY] = suite
    if (earlier := config.stash.get(EARLIER_RUN_KEY, None)) is not None and earlier.identity != json.loads(
        json.dumps(suite.capabilities.identity())
    ):
        _teardown_now(config)
        raise pytest.UsageError(
            f"ivc: --rerun-failed {earlier.directory}: that run was on another cluster ({earlier.identity}); "
            f"this one is {suite.capabilities.identity()}: a merged verdict would mix clusters"
        )
    if config.getoption("capability_report"):
        _capability_report(config, suite)
    reason = suite.capabilities.feature_unavailable_reason() or "; ".join(
        f"[{group}] {why}" for group, why in suite.capabilities.unavailable_groups().items()
    )
    if reason and config.getoption("require_feature"):
        _teardown_now(config)
        raise pytest.UsageError(f"ivc: image volumes unavailable (--require-feature): {reason}")


def _capability_report(config: pytest.Config, suite: SuiteSession) -> None:
    """The per-node-group table (and JSON), then exit: what platform teams schedule by."""
    caps = suite.capabilities
    rows = []
    for group in caps.groups:
        probe = caps.probes.get(group.id)
        unavailable = caps.group_unavailable_reason(group.id)
        rows.append(
            {
                "group": group.id,
                "runtime": group.runtime,
                "kubelet": group.kubelet_version,
                "nodes": list(group.nodes),
                "image_volumes": str(probe.image_volume) if probe else f"not probed: {unavailable or 'unavailable'}",
                "sub_path": str(probe.sub_path) if probe else "not probed",
                "artifacts": str(probe.artifact) if probe else "not probed",
            }
        )
    data = {"kubernetes": caps.server_version, "unavailable": caps.cluster_unavailable_reason(), "groups": rows}
    lines = ["| node group | nodes | image volumes | subPath | OCI artifacts |", "|---|---|---|---|---|"]
    lines += [f"| {r['group']} | {', '.join(r['nodes'])} | {r['image_volumes']} | {r['sub_path']} | {r['artifacts']} |"
              for r in rows]  # fmt: skip
    if report_dir := config.getoption("report_dir"):
        write_atomic(Path(report_dir) / "capabilities.json", json.dumps(data, indent=2) + "\n")
        lines.append(f"JSON: {Path(report_dir) / 'capabilities.json'}")
    else:
        lines.append(json.dumps(data))
    print("\n".join(lines))
    _teardown_now(config)
    pytest.exit("capability report written", returncode=0)


def _push_artifacts(config: pytest.Config) -> None:
    try:
        options = ClusterOptions.parse("existing", option_strings(config.option))
        registry = named_registry(options)
        references = preseed(registry, options.cache_dir)
    except ClusterError as error:
        raise pytest.UsageError(f"ivc: --push-artifacts: {error}") from None
    for reference in references:
        print(reference)
    pytest.exit(f"pushed the {len(references)} images and artifacts a run needs to {registry.push}", returncode=0)


@pytest.hookimpl(optionalhook=True, tryfirst=True)  # before xdist's own (one core per worker): first result wins
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """`-n auto`: twice the cores, at least 4 and at most 8. Tests mostly wait for the kubelet and
    the runtime; on 2 cores 4 workers ran the suite fastest (bench/run.py, README "Speed")."""
    return min(8, max(4, 2 * (os.cpu_count() or 1)))


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:  # xdist: hand the coordinates to every worker
    suite = node.config.stash.get(SESSION_KEY, None)
    if suite is not None:
        node.workerinput[WORKER_INPUT] = suite.to_json()


def pytest_report_header(config: pytest.Config) -> list[str]:
    suite = config.stash.get(SESSION_KEY, None)
    if suite is None:
        return ["ivc: no cluster (no conformance test selected)"] if _is_controller(config) else []
    caps = suite.capabilities
    lines = [
        f"ivc run {suite.run_id}: asked {asked(config)}",
        f"ivc found: {suite.handle.provider} cluster ({suite.handle.description})",
        f"ivc registry: push {suite.handle.registry.push}, pull {suite.handle.registry.pull}",
    ]
    lines += [f"ivc {line}" for line in caps.header_lines() + runtime_notes(caps)]
    reason = caps.cluster_unavailable_reason()
    groups = caps.unavailable_groups()
    verdict = f"IMAGE VOLUMES UNAVAILABLE: {reason}" if reason else "image volumes available"
    if groups and not reason:
        verdict = "; ".join(f"UNAVAILABLE on [{group}]: {why}" for group, why in groups.items())
    lines.append(f"ivc image volumes: {verdict}")
    return lines


def item_node_group(item: pytest.Item, caps: Capabilities) -> str | None:
    """The node group a test runs on when the cluster's nodes differ (its `node_group` parameter), else None."""
    callspec = getattr(item, "callspec", None)
    return callspec.params.get("node_group") if callspec is not None and caps.multi_group else None


def _behaviour_names(metafunc: pytest.Metafunc) -> set[str]:
    """The behaviours a test function checks: its markers and those of its parameter sets."""
    names = {marker.args[0] for marker in metafunc.definition.iter_markers("behaviour")}
    for parametrize in metafunc.definition.iter_markers("parametrize"):
        values = parametrize.args[1] if len(parametrize.args) > 1 else parametrize.kwargs.get("argvalues", [])
        for value in values:
            names |= {mark.args[0] for mark in getattr(value, "marks", ()) if mark.name == "behaviour"}
    return names


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """On a cluster whose nodes differ, every test of a node-deciding behaviour runs once per node group
    (test ids name the group: `test_x[containerd-2.1.9]`), its Pods pinned to that group."""
    suite = metafunc.config.stash.get(SESSION_KEY, None)
    if suite is None or not suite.capabilities.multi_group or "node_group" not in metafunc.fixturenames:
        return
    if any(decided_by(name) == "kubelet" for name in _behaviour_names(metafunc) if name in behaviours()):
        ids = [group.id for group in suite.capabilities.groups]
        metafunc.parametrize("node_group", ids, ids=ids, indirect=True)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> Generator[None, None, None]:
    """Every conformance test names a behaviour the table knows: no verdict without a classification.
    What was collected before any selection (-k, -m, --rerun-failed…) is recorded for the verdict."""
    collected = [(item.nodeid, item) for item in items if item.get_closest_marker("behaviour")]
    if (earlier := config.stash.get(EARLIER_RUN_KEY, None)) is not None:
        _select_rerun(config, items, earlier.to_rerun())
    known = behaviours()
    for item in items:
        markers = list(item.iter_markers("behaviour"))
        if not markers and CONFORMANCE_DIR in item.path.parents:
            raise pytest.UsageError(f"{item.nodeid} has no @pytest.mark.behaviour: add one (and a table row)")
        for marker in markers:
            if marker.args[0] not in known:
                raise pytest.UsageError(f"{item.nodeid}: behaviour {marker.args[0]!r} has no row in the table")
        if NODES_EXCLUSIVE_FIXTURE in getattr(item, "fixturenames", ()) and not item.get_closest_marker("disruptive"):
            raise pytest.UsageError(f"{item.nodeid} restarts a node's components: mark it @pytest.mark.disruptive")
    suite = config.stash.get(SESSION_KEY, None)
    if suite is not None:
        _check_table_is_total(suite, [item for _, item in collected])
    result = yield
    items.sort(key=run_order)
    config.stash[UNDISRUPTIVE_KEY] = frozenset(i.nodeid for i in items if not i.get_closest_marker("disruptive"))
    if suite is not None:
        selected = {item.nodeid for item in items}
        checks = [
            Check(nodeid, _behaviour(item), item_node_group(item, suite.capabilities), nodeid in selected)
            for nodeid, item in collected
        ]
        record = run_directory(suite.run_id) / COLLECTION_RECORD
        write_atomic(record, json.dumps([check.__dict__ for check in checks]), mode=0o600)
    return result


def _behaviour(item: pytest.Item) -> str:
    marker = item.get_closest_marker("behaviour")
    assert marker is not None
    return str(marker.args[0])


def _check_table_is_total(suite: SuiteSession, items: list[pytest.Item]) -> None:
    """With the cluster known: every behaviour has a row for it, or the run does not start."""
    caps = suite.capabilities
    if caps.cluster_unavailable_reason():
        return
    for item in items:
        group = item_node_group(item, caps)
        if group is not None and caps.group_unavailable_reason(group):
            continue
        if group is None and not caps.multi_group and caps.feature_unavailable_reason():
            continue
        try:
            lookup_on(_behaviour(item), caps, group)
        except NoRow as missing:
            raise pytest.UsageError(f"ivc: {missing.args[0]}") from None


def run_order(item: pytest.Item) -> int:
    """The order xdist's load scheduling hands tests out in. First the node-wide counter tests: while
    one runs no other test may reach a node, so they go before anyone does, beside the tests that reach
    none (the API's). Then `slow` ones, so the workers finish together, and the rest in file order (the
    sort is stable). `disruptive` ones last: they have the nodes to themselves too, once the rest ran."""
    names = getattr(item, "fixturenames", ())
    if item.get_closest_marker("disruptive"):
        return 4
    if MOUNTS_EXCLUSIVE_FIXTURE in names:
        return 0
    if not NODE_FIXTURES & set(names):
        return 1
    return 2 if item.get_closest_marker("slow") else 3


def _select_rerun(config: pytest.Config, items: list[pytest.Item], wanted: set[str]) -> None:
    keep = [item for item in items if report.rerun_key(item.nodeid) in wanted]
    if gone := wanted - {report.rerun_key(item.nodeid) for item in keep}:
        warnings.warn(
            RerunWarning(f"{len(gone)} failed tests of that run are not collected now: {', '.join(sorted(gone))}"),
            stacklevel=1,
        )
    config.hook.pytest_deselected(items=[item for item in items if item not in keep])
    items[:] = keep


class RerunWarning(pytest.PytestWarning):
    """--rerun-failed could not select every test that failed before (renamed, removed, or deselected here)."""


def pytest_runtest_setup(item: pytest.Item) -> None:
    marker = item.get_closest_marker("behaviour")
    if marker is None:
        return
    suite = item.config.stash.get(SESSION_KEY, None)
    if suite is None:
        pytest.skip("no cluster: run the conformance tests with --cluster=kind|existing|local")
    caps = suite.capabilities
    group = item_node_group(item, caps)
    node_deciding = decided_by(marker.args[0]) == "kubelet"
    unavailable = caps.cluster_unavailable_reason()
    if node_deciding and not unavailable:
        unavailable = caps.group_unavailable_reason(group) if group else caps.feature_unavailable_reason()
    where = f" on node group {group}" if group and caps.multi_group else ""
    try:
        expectation = lookup_on(marker.args[0], caps, group)
    except NoRow:
        if not unavailable:
            raise  # collection checked the table is total for this cluster
        # Below 1.31 the table has a row for the verdict test alone: the others are skipped unclassified.
        pytest.skip(f"image volumes unavailable{where}: {unavailable}")
    item.stash[EXPECTATION_KEY] = expectation
    item.user_properties += [
        ("ivc.behaviour", expectation.behaviour),
        ("ivc.level", expectation.level.value),
        ("ivc.source", expectation.source),
        ("ivc.scope", expectation.scope),
        ("ivc.group", group or ""),
        ("ivc.defect_of", expectation.defect_of.value if expectation.defect_of else ""),
        ("ivc.disruptive", "yes" if item.get_closest_marker("disruptive") else ""),
    ]
    if unavailable and not item.get_closest_marker("runs_without_feature"):
        pytest.skip(f"image volumes unavailable{where}: {unavailable}")
    if not expectation.applies:
        pytest.skip(f"{expectation.behaviour}: {expectation.reason} [{expectation.scope}]")


def _failure_text(call: pytest.CallInfo[None], test_report: pytest.TestReport) -> str:
    # The exception's own text too: with --tb=line/no the report's text is only a line.
    return f"{call.excinfo.exconly() if call.excinfo else ''}\n{test_report.longreprtext}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Classifies what happened by the table: a known defect only when the failure shows its symptom,
    a check blocked by the registry or the cluster (EnvironmentProblem) as blocked, never failed."""
    test_report = yield
    expectation = item.stash.get(EXPECTATION_KEY, None)
    suite = item.config.stash.get(SESSION_KEY, None)
    if expectation is None or suite is None:
        return test_report
    blocked = call.excinfo is not None and call.excinfo.errisinstance(EnvironmentProblem)
    if test_report.failed and not blocked and call.when == "call" and expectation.level is Level.KNOWN_DEFECT:
        if re.search(expectation.symptom, _failure_text(call, test_report)):
            test_report.outcome = "skipped"
            test_report.wasxfail = known_defect_reason(expectation)  # read by pytest's terminal and junit
            return test_report
        note = f"the table expects this failure to show {expectation.symptom!r}; it did not: a plain failure"
        test_report.sections.append(("ivc: not the known defect", note))
    if test_report.passed and call.when == "call" and expectation.level is Level.KNOWN_DEFECT:
        note = f"{expectation.reason} ({expectation.source}) did not show here: fixed? update the expectation table"
        test_report.user_properties.append((report.DEFECT_NOT_SEEN_PROPERTY, note))
    if test_report.failed:
        _explain_failure(item, call, test_report, suite, expectation.behaviour)
    if test_report.failed and blocked:
        assert call.excinfo is not None
        problem = str(call.excinfo.value)
        test_report.user_properties.append((report.BLOCKED_PROPERTY, problem))
        test_report.outcome = "skipped"
        test_report.longrepr = (str(item.path), item.location[1] or 0, f"Skipped: blocked, {problem}")
    return test_report


def _explain_failure(
    item: pytest.Item, call: pytest.CallInfo[None], test_report: pytest.TestReport, suite: SuiteSession, behaviour: str
) -> None:
    group = item_node_group(item, suite.capabilities)
    caps = suite.capabilities.for_group(group) if group else suite.capabilities
    for hint in hints_for(behaviour, _failure_text(call, test_report), caps):
        test_report.sections.append(("ivc known issue", hint))
        test_report.user_properties.append(("ivc.hint", hint))
    namespaces = item.stash.get(NAMESPACES_KEY, [])
    report_dir = item.config.getoption("report_dir")
    if namespaces:
        text = diagnostics.collect_diagnostics(suite, item.nodeid, namespaces, report_dir)
        if text:
            test_report.sections.append(("ivc diagnostics", text))
        if report_dir and (html_path := item.config.getoption("htmlpath", None)):
            link = os.path.relpath(diagnostics.diagnostics_dir(report_dir, item.nodeid), Path(html_path).parent)
            extras = [*getattr(test_report, "extras", []), html_extras.url(link, name="diagnostics")]
            test_report.extras = extras  # type: ignore[attr-defined]  # read by pytest-html


def _verdict(config: pytest.Config) -> tuple[RunVerdict, dict[str, Result]] | None:
    """The run's verdict (computed once, in the controller, when the tests are done)."""
    if (found := config.stash.get(VERDICT_KEY, None)) is not None:
        return found
    suite = config.stash.get(SESSION_KEY, None)
    if not _is_controller(config) or suite is None:
        return None
    record = run_directory(suite.run_id) / COLLECTION_RECORD
    try:
        checks = [Check(**raw) for raw in json.loads(record.read_text())]
    except (OSError, ValueError):
        checks = []  # no process collected (every worker crashed first): nothing ran, nothing is proven
    results = report.merged_results(config.stash[RESULTS_KEY].results, config.stash.get(EARLIER_RUN_KEY, None))
    verdict = run_verdict(suite.capabilities, checks, results, partial_selection=partial_selection(config))
    config.stash[VERDICT_KEY] = (verdict, results)
    return verdict, results


class HtmlReport:
    """pytest-html's report (controller only): its title is the verdict, its summary opens with the cluster,
    its table shows each test's node group and level, and a skip shows its reason as text."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.report: Any = None  # pytest-html's report data, handed over once at session start

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_report_title(self, report: Any) -> None:
        report.title = "ImageVolume conformance"
        self.report = report

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_results_table_header(self, cells: list[str]) -> None:
        cells.insert(2, '<th class="sortable" data-column-type="group">Node group</th>')
        cells.insert(3, '<th class="sortable" data-column-type="level">Level</th>')

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_results_table_row(self, report: pytest.TestReport, cells: list[str]) -> None:
        props = {key: str(value) for key, value in report.user_properties}
        cells.insert(2, f'<td class="col-group">{html.escape(props.get("ivc.group", ""))}</td>')
        cells.insert(3, f'<td class="col-level">{html.escape(props.get("ivc.level", ""))}</td>')

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_results_table_html(self, report: pytest.TestReport, data: list[str]) -> None:
        if report.skipped and not hasattr(report, "wasxfail"):
            data[:] = [html.escape(f"skipped: {skip_reason(report)}")]

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_results_summary(
        self, prefix: list[str], summary: list[str], postfix: list[str], session: pytest.Session
    ) -> None:
        found = _verdict(self.config)
        suite = self.config.stash.get(SESSION_KEY, None)
        if found is None or suite is None:
            return
        verdict, results = found
        data = report.summary_data(suite, verdict, results, "", {}, asked(self.config))
        prefix.extend(report.html_summary(data))
        if self.report is not None:  # the first line a reader sees
            self.report.title = f"ImageVolume conformance: {verdict.line()}"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config) -> None:
    suite = config.stash.get(SESSION_KEY, None)
    found = _verdict(config)
    if suite is None or found is None:
        return
    verdict, results = found
    reproduce = shlex.join(["pytest", *config.invocation_params.args])
    stages = config.stash[STAGES_KEY]
    stages["tests"] = time.monotonic()
    data = report.summary_data(suite, verdict, results, reproduce, report.stage_seconds(stages), asked(config))
    report.write_summary(terminalreporter, data, config.getoption("report_dir"))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    suite = config.stash.get(SESSION_KEY, None)
    if not _is_controller(config) or suite is None:
        return
    found = _verdict(config)
    if found is not None and exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
        # The exit status follows the verdict (README "Verdicts and exit statuses"), not pytest's own count:
        # an optional check's failure leaves a cluster conformant, a deselected required one does not.
        session.exitstatus = found[0].exit_status(config.getoption("accept_known_defects"))
    report_dir = config.getoption("report_dir")
    if report_dir and session.testsfailed:
        logs = diagnostics.collect_node_logs(suite, Path(report_dir))
        if logs is not None:
            progress(f"node logs of the failed run: {logs}")
    # Here rather than at unconfigure: a problem becomes a warning in the run's summary.
    for problem in _teardown(config):
        warnings.warn(CleanupWarning(problem), stacklevel=1)


class CleanupWarning(pytest.PytestWarning):
    """Something this run created could not be removed: the message says what, and how to remove it."""


def _teardown(config: pytest.Config) -> list[str]:
    """Remove what this run created (idempotent); the problems, one line each."""
    problems: list[str] = []
    if config.stash.get(TORN_DOWN_KEY, False):
        return problems
    config.stash[TORN_DOWN_KEY] = True
    suite = config.stash.get(SESSION_KEY, None)
    provider = config.stash.get(PROVIDER_KEY, None)
    if suite is not None:
        try:
            end_session(suite.run_id, Kube(suite.handle.kubeconfig, suite.handle.context))
        except Exception as error:  # noqa: BLE001 - cleanup is best effort and must say why it failed
            problems.append(f"could not delete the namespaces of run {suite.run_id}: {error}")
        remove_run_directory(suite.run_id)
    if provider is None:
        return problems
    # No handle means `up` failed, and providers clean up after their own failed `up`.
    handle = config.stash.get(HANDLE_KEY, None)
    if handle is not None and handle.created_by_run and not config.getoption("keep_cluster"):
        progress(f"tearing down the {provider.name} cluster this run created (--keep-cluster keeps it)")
        try:
            provider.down()
        except ClusterError as error:
            problems.append(f"teardown of the {provider.name} cluster failed: {error}")
    return problems


def _teardown_now(config: pytest.Config) -> None:
    """Teardown outside a test session (failed start, unconfigure): problems go straight to stderr."""
    for problem in _teardown(config):
        print(f"ivc: {problem}", file=sys.stderr)


def pytest_unconfigure(config: pytest.Config) -> None:
    if _is_controller(config):
        _teardown_now(config)  # a no-op when sessionfinish already tore down
