"""Where a run's processes meet on this host: the run directory (records, locks, the collection record),
and flock(2) on a file in it. All xdist workers of a run share it; runs never do."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


def _run_path(run_id: str) -> Path:
    return Path(tempfile.gettempdir()) / f"ivc-{run_id}"


def run_directory(run_id: str) -> Path:
    """Where the run's processes meet (lock and record files); the controller removes it at the end."""
    path = _run_path(run_id)
    path.mkdir(mode=0o700, exist_ok=True)
    return path


def remove_run_directory(run_id: str) -> None:
    shutil.rmtree(_run_path(run_id), ignore_errors=True)


@contextlib.contextmanager
def flocked(path: Path, mode: int = fcntl.LOCK_EX) -> Iterator[None]:
    """`flock(2)` on `path` (created if absent) for the block; closing the file releases it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, mode)
        yield
    finally:
        os.close(fd)
