"""The benchmark counts the disruptive tests' wall time apart: what they take alone, at the run's end."""

from __future__ import annotations

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location("bench_run", Path(__file__).resolve().parents[1] / "bench" / "run.py")
assert _spec and _spec.loader
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def _test(began: float, ended: float, disruptive: bool = False) -> dict:
    return {"span": [began, ended], "disruptive": disruptive}


def test_disruptive_time_runs_from_the_last_other_test_to_the_last_restart():
    tests = [_test(0, 20), _test(5, 31), _test(25, 40, disruptive=True), _test(40, 46, disruptive=True)]
    # The first restart waited (in its setup) from 25 until the others ended at 31: that wait overlapped them.
    assert bench.disruptive_seconds(tests) == 15


def test_without_disruptive_tests_nothing_is_counted_apart():
    assert bench.disruptive_seconds([_test(0, 20), _test(3, 9)]) == 0.0


def test_a_run_of_restarts_alone_counts_them_whole_and_a_crashed_test_has_no_span():
    tests = [_test(10, 14, disruptive=True), _test(14, 19, disruptive=True), _test(0, 0)]
    assert bench.disruptive_seconds(tests) == 9
