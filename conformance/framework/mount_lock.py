"""Node-wide counters need the nodes to themselves: a reader/writer lock across the run's xdist workers.

The kubelet's image volume counters have no labels, so a test that asserts "this mount made the
counter grow" must be the only one of the run mounting while it reads them. Every test that starts
Pods holds the lock *shared* (from its first Pod until its Pods are deleted); a test that reads
node-wide counters holds it *exclusive*. Writers are preferred (a turnstile lock that new readers pass
through), so an exclusive holder waits only for the tests running at that moment, never for the rest
of the run. The lock files live in the run directory (run_directory.py).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from conformance.framework.run_directory import flocked, run_directory


class MountLock:
    def __init__(self, run_id: str, directory: Path | None = None) -> None:
        base = directory or run_directory(run_id)
        self._room = base / "mounts.lock"
        self._turnstile = base / "turnstile.lock"
        self._exclusive = False  # a holder of the exclusive lock also starts Pods of its own
        # Re-entrant per process: a second shared request while one is held must not queue behind a
        # waiting writer (the writer waits for this process's first one: a deadlock).
        self._shared_depth = 0

    @contextlib.contextmanager
    def shared(self) -> Iterator[None]:
        """Held while this test's Pods may mount image volumes."""
        if self._exclusive or self._shared_depth:
            self._shared_depth += 1
            try:
                yield
            finally:
                self._shared_depth -= 1
            return
        with flocked(self._turnstile, fcntl.LOCK_EX):
            fd = os.open(self._room, os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(fd, fcntl.LOCK_SH)
        self._shared_depth = 1
        try:
            yield
        finally:
            self._shared_depth = 0
            os.close(fd)

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """No other test of the run mounts anything while this is held."""
        with flocked(self._turnstile, fcntl.LOCK_EX), flocked(self._room, fcntl.LOCK_EX):
            self._exclusive = True
            try:
                yield
            finally:
                self._exclusive = False
