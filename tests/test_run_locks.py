"""The run locks across processes: shared holders coexist, an exclusive holder waits for them and
blocks new ones, and a process never deadlocks against itself; a restart waits for the run's other tests."""

from __future__ import annotations

import multiprocessing
import time

import pytest

from conformance.framework.run_locks import RunLock, RunProgress
from conformance.infra.wait import WaitTimeout


def _hold_shared(run_id: str, directory, seconds: float, started) -> None:
    lock = RunLock(run_id, "mounts", directory)
    with lock.shared():
        started.set()
        time.sleep(seconds)


def test_exclusive_waits_for_shared_holders_of_other_processes(tmp_path):
    started = multiprocessing.Event()
    holder = multiprocessing.Process(target=_hold_shared, args=("run", tmp_path, 0.5, started))
    holder.start()
    assert started.wait(10)
    began = time.monotonic()
    lock = RunLock("run", "mounts", tmp_path)
    with lock.exclusive():
        waited = time.monotonic() - began
    holder.join(10)
    assert waited >= 0.3, f"the exclusive lock did not wait for the other process's shared hold ({waited:.2f}s)"


def test_shared_is_reentrant_and_free_inside_exclusive(tmp_path):
    lock = RunLock("run", "mounts", tmp_path)
    with lock.shared(), lock.shared():
        pass
    with lock.exclusive(), lock.shared():  # a metrics test starts Pods of its own
        pass


def test_locks_of_other_names_are_independent(tmp_path):
    started = multiprocessing.Event()
    holder = multiprocessing.Process(target=_hold_shared, args=("run", tmp_path, 5.0, started))
    holder.start()
    try:
        assert started.wait(10)
        began = time.monotonic()
        with RunLock("run", "nodes", tmp_path).exclusive():  # the other process holds "mounts" shared
            waited = time.monotonic() - began
        assert waited < 2, f"an exclusive 'nodes' hold waited {waited:.2f}s for a shared 'mounts' one"
    finally:
        holder.terminate()
        holder.join(10)


def _finish_later(run_id: str, directory, nodeids: list[str], seconds: float) -> None:
    time.sleep(seconds)
    progress = RunProgress(run_id, directory)
    for nodeid in nodeids:
        progress.finished(nodeid)


def test_a_restart_waits_until_every_other_test_finished_in_any_process(tmp_path):
    others = ["t.py::a", "t.py::b[x]", "t.py::c"]
    RunProgress("run", tmp_path).finished(others[0])
    finisher = multiprocessing.Process(target=_finish_later, args=("run", tmp_path, others[1:], 0.5))
    finisher.start()
    began = time.monotonic()
    assert RunProgress("run", tmp_path).wait_until_finished(others, timeout=30) is True
    waited = time.monotonic() - began
    finisher.join(10)
    assert waited >= 0.4, f"the wait ended before the other process's tests finished ({waited:.2f}s)"


def test_a_test_that_never_finishes_ends_the_wait_at_its_bound_naming_it(tmp_path):
    RunProgress("run", tmp_path).finished("t.py::a")
    with pytest.raises(WaitTimeout, match=r"1 still to finish, e\.g\. t\.py::lost"):
        RunProgress("run", tmp_path).wait_until_finished(["t.py::a", "t.py::lost"], timeout=1)


def test_nothing_to_wait_for_ends_at_once(tmp_path):
    RunProgress("run", tmp_path).wait_until_finished([], timeout=0.1)


def test_a_run_that_stops_early_ends_the_wait_at_once(tmp_path):
    RunProgress("run", tmp_path).stopping()
    assert RunProgress("run", tmp_path).wait_until_finished(["t.py::never-run"], timeout=30) is False
