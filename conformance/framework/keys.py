"""Where plugin state lives in pytest's stash: the keys; and the fixture names the plugin's hooks and the
fixtures agree on. Nothing else, so no module imports the plugin (nor the plugin the fixtures, early)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conformance.cluster.contract import ClusterHandle, ClusterProvider
    from conformance.framework.expectations import Expectation
    from conformance.framework.report import EarlierRun, ResultCollector
    from conformance.framework.session import SuiteSession
    from conformance.framework.verdict import Result, RunVerdict

SESSION_KEY: pytest.StashKey[SuiteSession] = pytest.StashKey()  # config: the run (controller and workers)
PROVIDER_KEY: pytest.StashKey[ClusterProvider] = pytest.StashKey()  # config: controller only
HANDLE_KEY: pytest.StashKey[ClusterHandle] = pytest.StashKey()  # config: controller only
EARLIER_RUN_KEY: pytest.StashKey[EarlierRun] = pytest.StashKey()  # config: --rerun-failed's report
TORN_DOWN_KEY: pytest.StashKey[bool] = pytest.StashKey()  # config: teardown ran (it runs once)
RESULTS_KEY: pytest.StashKey[ResultCollector] = pytest.StashKey()  # config: controller only
# config, controller only: the run's verdict and the results it was computed from (once, when tests are done)
VERDICT_KEY: pytest.StashKey[tuple[RunVerdict, dict[str, Result]]] = pytest.StashKey()
EXPECTATION_KEY: pytest.StashKey[Expectation] = pytest.StashKey()  # item
NAMESPACES_KEY: pytest.StashKey[list[str]] = pytest.StashKey()  # item: the namespaces its diagnostics describe
STAGES_KEY: pytest.StashKey[dict[str, float]] = pytest.StashKey()  # config: controller, stage → monotonic end
UNDISRUPTIVE_KEY: pytest.StashKey[frozenset[str]] = pytest.StashKey()  # config: the selected tests restarting nothing

# Fixtures that hold a run lock exclusive (run_locks.py): no other test mounts (node-wide counters), no other
# test reaches a node (restarts); and the fixtures that reach a node.
MOUNTS_EXCLUSIVE_FIXTURE = "exclusive_node_counters"
NODES_EXCLUSIVE_FIXTURE = "restart_on_node"
EXCLUSIVE_FIXTURES = frozenset({MOUNTS_EXCLUSIVE_FIXTURE, NODES_EXCLUSIVE_FIXTURE})
NODE_FIXTURES = frozenset({"launch", "shared_pod", "crictl", "node_shell"})
