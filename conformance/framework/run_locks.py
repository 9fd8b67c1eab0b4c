"""Reader/writer locks across a run's xdist workers (lock files in the run directory, run_directory.py).

- `mounts`: every test that starts Pods holds it *shared* (from its first Pod until its Pods are deleted);
  a test that reads the kubelet's node-wide image volume counters holds it *exclusive*: the counters have
  no labels, so "this mount made the counter grow" holds only while no other test of the run mounts.
  Execs into running Pods mount nothing and go on.
- `nodes`: every test that reaches a node (its Pods, execs, crictl, the node's mount table) holds it
  *shared* while it runs; a test that restarts a node's kubelet or runtime holds it *exclusive*: an exec
  meanwhile would fail.

Taken in that order (`nodes`, then `mounts`), so no two tests wait for each other. Writers are preferred
(a turnstile lock that new readers pass through), so an exclusive holder waits only for the tests
running at that moment, never for the rest of the run.

`RunProgress` records which tests of the run have finished. A restart waits for all the others first:
taking the lock at once would hold back the tests still queued on other workers, which then run after
the restarts, one after another.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from conformance.framework.run_directory import flocked, run_directory
from conformance.infra.files import append_line
from conformance.infra.wait import NotYet, wait_for

FINISHED_RECORD = "finished-tests"


class RunLock:
    def __init__(self, run_id: str, name: str, directory: Path | None = None) -> None:
        base = directory or run_directory(run_id)
        self._room = base / f"{name}.lock"
        self._turnstile = base / f"{name}.turnstile.lock"
        self._exclusive = False  # a holder of the exclusive lock also starts Pods of its own
        # Re-entrant per process: a second shared request while one is held must not queue behind a
        # waiting writer (the writer waits for this process's first one: a deadlock).
        self._shared_depth = 0

    @contextlib.contextmanager
    def shared(self) -> Iterator[None]:
        """Held by a test of the many (see the module's docstring)."""
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
        """Held by a test that needs the others of the run to stay out (see the module's docstring)."""
        with flocked(self._turnstile, fcntl.LOCK_EX), flocked(self._room, fcntl.LOCK_EX):
            self._exclusive = True
            try:
                yield
            finally:
                self._exclusive = False


class RunProgress:
    """The tests of the run that have finished, whichever process ran them (a line each, in the run directory),
    and whether the run stops early (`-x`, `--maxfail`: the tests still queued will never finish)."""

    STOPPING = "!stopping"  # never a node id

    def __init__(self, run_id: str, directory: Path | None = None) -> None:
        self._record = (directory or run_directory(run_id)) / FINISHED_RECORD

    def finished(self, nodeid: str) -> None:
        append_line(self._record, nodeid)

    def stopping(self) -> None:
        append_line(self._record, self.STOPPING)

    def wait_until_finished(self, nodeids: Iterable[str], timeout: float) -> bool:
        """Until every test of `nodeids` has finished (True) or the run stops early (False); raises
        WaitTimeout naming one still left after `timeout`."""
        wanted = set(nodeids)

        def all_finished() -> bool:
            try:
                done = set(self._record.read_text().splitlines())
            except FileNotFoundError:
                done = set()
            if self.STOPPING in done:
                return False
            if left := wanted - done:
                raise NotYet(f"{len(left)} still to finish, e.g. {min(left)}")
            return True

        return wait_for("the run's other tests to finish", all_finished, timeout=timeout, interval=1.0)
