"""The run locks across processes: shared holders coexist, an exclusive holder waits for them and
blocks new ones, and a process never deadlocks against itself."""

from __future__ import annotations

import multiprocessing
import time

from conformance.framework.run_locks import RunLock


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
