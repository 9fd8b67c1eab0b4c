"""pytest hooks only: options, markers, header, the xdist controller/worker handoff, verdicts.

Data flow (one direction):
  controller: options → provider → cluster handle → capabilities → artifacts pushed → workers
  worker:     per test, expectation lookup → namespace → Pod → observe → assert
  controller: reports → summary → teardown of what this run created
The controller is the process without `workerinput` (or the only process without xdist).
"""

from __future__ import annotations

import importlib.util
import os
import shlex
import sys
import time
import warnings
from collections.abc import Generator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from pytest_html import extras as html_extras

import conformance
from conformance.cluster import make_provider
from conformance.cluster.contract import ClusterHandle
from conformance.cluster.errors import ClusterError
from conformance.cluster.existing import ExistingProvider
from conformance.cluster.options import DEFAULT_PROVIDER, EXISTING, PROVIDER_NAMES, ClusterOptions, given
from conformance.cluster.options import add_to as add_cluster_options
from conformance.cluster.progress import progress
from conformance.framework import report
from conformance.framework.exclusive import remove_run_directory
from conformance.framework.expectations import (
    Level,
    NoRow,
    behaviours,
    known_defect_reason,
    lookup,
    runtime_notes,
)
from conformance.framework.keys import (
    EXPECTATION_KEY,
    HANDLE_KEY,
    NAMESPACES_KEY,
    PROVIDER_KEY,
    RERUN_KEY,
    SESSION_KEY,
    STAGES_KEY,
    TORN_DOWN_KEY,
    VERDICTS_KEY,
)
from conformance.framework.known_issues import hints_for
from conformance.framework.namespaces import RUN_LABEL
from conformance.framework.session import SuiteSession, new_run_id, preseed, start_session

# Loaded through the pytest11 entry point (or `-p conformance.framework.plugin`): the fixtures come along.
pytest_plugins = ("conformance.framework.fixtures",)

WORKER_INPUT = "ivc_session"

MARKERS = {
    "behaviour(name)": "the behaviour from conformance/framework/expectations.py this test checks; the table "
    "decides whether it applies to the cluster and how it is classified",
    "conformance": "equivalent of a Kubernetes [Conformance] test for ImageVolume (GA in 1.36)",
    "slow": "seconds where most tests take a fraction of one (Pods one after another, a node-side teardown, a "
    "large pull): started first, so xdist workers finish together; deselect with -m 'not slow' for a quick pass",
    "runs_without_feature": "runs even when image volumes are unavailable (the session-level verdict itself)",
}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("ivc", "ImageVolume conformance")
    group.addoption(
        "--cluster",
        choices=PROVIDER_NAMES,
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
        help="run only the tests that failed or errored in the run that wrote REPORT_DIR (its summary.json)",
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


@pytest.hookimpl(tryfirst=True)  # before pytest-timeout reads its settings
def pytest_configure(config: pytest.Config) -> None:
    if (
        config.pluginmanager.has_plugin("timeout")
        and config.getoption("timeout") is None
        and not config.getini("timeout")
    ):
        config.option.timeout = TEST_TIMEOUT_SECONDS
    for marker, doc in MARKERS.items():
        config.addinivalue_line("markers", f"{marker}: {doc}")
    if getattr(config.option, "htmlpath", None) and not config.getoption("report_dir"):
        # Diagnostics beside the HTML report, so that each failure can link its own.
        config.option.report_dir = str(Path(config.option.htmlpath).parent)
    if config.getoption("report_dir") and not config.option.xmlpath:
        config.option.xmlpath = str(Path(config.getoption("report_dir")) / "junit_01.xml")
    if rerun := config.getoption("rerun_failed"):
        try:
            config.stash[RERUN_KEY] = report.failed_tests(Path(rerun))
        except ValueError as error:
            raise pytest.UsageError(f"ivc: {error}") from None
    if _is_controller(config):
        collector = config.stash[VERDICTS_KEY] = report.VerdictCollector()
        config.pluginmanager.register(collector, "ivc-verdicts")
        config.pluginmanager.register(report.LiveProgress(partial(_write_line, config)), "ivc-progress")
        config.pluginmanager.register(HtmlReport(config), "ivc-html")
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


def _obtain_cluster(config: pytest.Config, options: ClusterOptions) -> ClusterHandle:
    provider = make_provider(options)
    config.stash[PROVIDER_KEY] = provider
    running = provider.running_handle()
    if running is not None:
        progress(f"reusing the running {provider.name} cluster ({running.description}); it stays up after the run")
        return running
    if config.getoption("reuse_cluster"):
        raise ClusterError(
            f"--reuse-cluster: no running {provider.name} cluster found; start one with "
            f"`python -m conformance.cluster up --provider {provider.name}`"
        )
    progress(f"bringing up a {provider.name} cluster for this run")
    return provider.up()


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    config = session.config
    if config.getoption("list_artifacts"):
        report.print_artifact_list(config.getoption("registry") or "<registry>")
        pytest.exit("listed the artifacts this run needs", returncode=0)
    if config.getoption("push_artifacts"):
        _push_artifacts(config)
    if not _is_controller(config) or not _selects_conformance(config):
        return
    stages = config.stash[STAGES_KEY] = {"start": time.monotonic()}
    try:
        options = ClusterOptions.parse(config.getoption("cluster"), given(config.option))
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
    reason = suite.capabilities.feature_unavailable_reason()
    if reason and config.getoption("require_feature"):
        _teardown_now(config)
        raise pytest.UsageError(f"ivc: image volumes unavailable (--require-feature): {reason}")


def _push_artifacts(config: pytest.Config) -> None:
    try:
        options = ClusterOptions.parse(EXISTING, given(config.option))
        registry = ExistingProvider(options).registry_endpoint()
        references = preseed(registry, options.cache_dir)
    except ClusterError as error:
        raise pytest.UsageError(f"ivc: --push-artifacts: {error}") from None
    for reference in references:
        print(reference)
    pytest.exit(f"pushed the {len(references)} images and artifacts a run needs to {registry.push}", returncode=0)


@pytest.hookimpl(optionalhook=True)
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
    lines = [
        f"ivc run {suite.run_id}: {suite.handle.provider} cluster ({suite.handle.description})",
        f"ivc registry: push {suite.handle.registry.push}, pull {suite.handle.registry.pull}",
    ]
    lines += [f"ivc {line}" for line in suite.capabilities.header_lines() + runtime_notes(suite.capabilities)]
    reason = suite.capabilities.feature_unavailable_reason()
    verdict = f"IMAGE VOLUMES UNAVAILABLE: {reason}" if reason else "image volumes available"
    lines.append(f"ivc image volumes: {verdict}")
    return lines


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every conformance test names a behaviour the table knows: no verdict without a classification."""
    if (rerun := config.stash.get(RERUN_KEY, None)) is not None:
        _select_rerun(config, items, rerun)
    known = behaviours()
    for item in items:
        markers = list(item.iter_markers("behaviour"))
        if not markers and CONFORMANCE_DIR in item.path.parents:
            raise pytest.UsageError(f"{item.nodeid} has no @pytest.mark.behaviour: add one (and a table row)")
        for marker in markers:
            if marker.args[0] not in known:
                raise pytest.UsageError(f"{item.nodeid}: behaviour {marker.args[0]!r} has no row in the table")
    items.sort(key=run_order)
    # With the cluster known: every behaviour has a row for it, or the run does not start.
    suite = config.stash.get(SESSION_KEY, None)
    if suite is None or suite.capabilities.feature_unavailable_reason():
        return
    for behaviour in sorted({m.args[0] for item in items for m in item.iter_markers("behaviour")}):
        try:
            lookup(behaviour, suite.capabilities)
        except NoRow as missing:
            raise pytest.UsageError(f"ivc: {missing.args[0]}") from None


def run_order(item: pytest.Item) -> int:
    """The order xdist's load scheduling hands tests out in. First the node-wide counter tests: while
    one runs no other test may start a Pod, so they go before anyone holds one, beside the tests that
    start no Pod of their own (the API's, and those reading the shared Pods the controller started).
    Then `slow` ones, so the workers finish together. The sort is stable: the rest keeps file order."""
    names = getattr(item, "fixturenames", ())
    if "exclusive_node_counters" in names:
        return 0
    if "launch" not in names:
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
    unavailable = suite.capabilities.feature_unavailable_reason()
    try:
        expectation = lookup(marker.args[0], suite.capabilities)
    except NoRow:
        if not unavailable:
            raise  # collection checked the table is total for this cluster
        # Below 1.31 the table has a row for the verdict test alone: the others are skipped unclassified.
        pytest.skip(f"image volumes unavailable: {unavailable}")
    item.stash[EXPECTATION_KEY] = expectation
    item.user_properties += [
        ("ivc.behaviour", expectation.behaviour),
        ("ivc.level", expectation.level.value),
        ("ivc.source", expectation.source),
        ("ivc.scope", expectation.scope),
        ("ivc.defect_of", expectation.defect_of.value if expectation.defect_of else ""),
    ]
    if unavailable and not item.get_closest_marker("runs_without_feature"):
        pytest.skip(f"image volumes unavailable: {unavailable}")
    if not expectation.applies:
        pytest.skip(f"{expectation.behaviour}: {expectation.reason} [{expectation.scope}]")
    if expectation.level is Level.KNOWN_DEFECT:
        # strict: a pass fails the run, so a fixed runtime is noticed and the table updated.
        item.add_marker(pytest.mark.xfail(reason=known_defect_reason(expectation), strict=True))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    test_report = yield
    if test_report.failed:
        expectation = item.stash.get(EXPECTATION_KEY, None)
        suite = item.config.stash.get(SESSION_KEY, None)
        if expectation is not None and suite is not None:
            # The exception's own text too: with --tb=line/no the report's text is only a line.
            failure = f"{call.excinfo.exconly() if call.excinfo else ''}\n{test_report.longreprtext}"
            for hint in hints_for(expectation.behaviour, failure, suite.capabilities):
                test_report.sections.append(("ivc known issue", hint))
                test_report.user_properties.append(("ivc.hint", hint))
        namespaces = item.stash.get(NAMESPACES_KEY, [])
        report_dir = item.config.getoption("report_dir")
        if suite is not None and namespaces:
            text = report.collect_diagnostics(suite, item.nodeid, namespaces, report_dir)
            if text:
                test_report.sections.append(("ivc diagnostics", text))
            if report_dir and (html_path := item.config.getoption("htmlpath", None)):
                link = os.path.relpath(report.diagnostics_dir(report_dir, item.nodeid), Path(html_path).parent)
                extras = [*getattr(test_report, "extras", []), html_extras.url(link, name="diagnostics")]
                test_report.extras = extras  # type: ignore[attr-defined]  # read by pytest-html
    return test_report


class HtmlReport:
    """pytest-html's report (controller only): its title is the verdict, its summary opens with the cluster."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.report: Any = None  # pytest-html's report data, handed over once at session start

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_report_title(self, report: Any) -> None:
        report.title = "ImageVolume conformance"
        self.report = report

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_results_summary(
        self, prefix: list[str], summary: list[str], postfix: list[str], session: pytest.Session
    ) -> None:
        suite = self.config.stash.get(SESSION_KEY, None)
        if suite is None:
            return
        verdicts = list(self.config.stash[VERDICTS_KEY].verdicts.values())
        prefix.extend(report.html_summary(suite, verdicts))
        if self.report is not None:  # the first line a reader sees
            self.report.title = f"ImageVolume conformance: {report.run_verdict(suite, verdicts).line()}"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config) -> None:
    suite = config.stash.get(SESSION_KEY, None)
    if _is_controller(config) and suite is not None:
        verdicts = list(config.stash[VERDICTS_KEY].verdicts.values())
        reproduce = shlex.join(["pytest", *config.invocation_params.args])
        stages = config.stash[STAGES_KEY]
        stages["tests"] = time.monotonic()
        report.write_summary(
            terminalreporter, suite, verdicts, config.getoption("report_dir"), reproduce, report.stage_seconds(stages)
        )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    suite = config.stash.get(SESSION_KEY, None)
    if not _is_controller(config) or suite is None:
        return
    verdict = report.run_verdict(suite, list(config.stash[VERDICTS_KEY].verdicts.values()))
    if verdict.known_defects and exitstatus == 0 and not config.getoption("accept_known_defects"):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED  # NOT CONFORMANT, unless the user accepts them
    report_dir = config.getoption("report_dir")
    if report_dir and session.testsfailed:
        logs = report.collect_node_logs(suite, Path(report_dir))
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
        if (problem := report.sweep_namespaces(suite, RUN_LABEL)) is not None:
            problems.append(problem)
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
