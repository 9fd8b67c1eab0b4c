"""The one way to write a file or put a directory in place: atomically, so a reader (another xdist worker,
a later process, a concurrent build) never sees half of one (or half a line of a shared record). Nothing
else renames, replaces or appends."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


def write_private(path: Path, text: str) -> Path:
    """Atomically write a file readable by its owner only (keys, passwords, kubeconfigs)."""
    return write_atomic(path, text, mode=0o600)


def write_atomic(path: Path, text: str | bytes, mode: int = 0o644) -> Path:
    """Write beside the target and rename: readers never see a half-written file, and a private
    file is never world-readable, not even for a moment."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as out:
            out.write(text.encode() if isinstance(text, str) else text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def append_line(path: Path, line: str) -> None:
    """Append `line` in one write(2) with O_APPEND: lines of concurrent writers (xdist workers) never mix."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, f"{line}\n".encode())
    finally:
        os.close(fd)


def write_executable(path: Path, text: str) -> Path:
    return write_atomic(path, text, mode=0o755)


def copy_executable(source: Path, target: Path) -> Path:
    """Put a copy of a (large) binary in place, executable, without reading it into memory."""
    with staged_file(target) as scratch:
        shutil.copyfile(source, scratch)
        scratch.chmod(0o755)
    return target


@contextlib.contextmanager
def staged_directory(target: Path) -> Iterator[Path]:
    """Fill a scratch directory beside `target`; it replaces `target` when the block ends without error (a
    reader sees the old tree or the whole new one, never a half-built one). On error the scratch goes."""
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        yield scratch
        if target.exists():
            shutil.rmtree(target)
        os.replace(scratch, target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


@contextlib.contextmanager
def staged_file(target: Path) -> Iterator[Path]:
    """A scratch path beside `target` for a tool to write (a compiler, mmdebstrap); it becomes `target` when
    the block ends without error, and is removed otherwise."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, scratch = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    os.close(fd)
    try:
        yield Path(scratch)
        os.replace(scratch, target)
    finally:
        Path(scratch).unlink(missing_ok=True)
