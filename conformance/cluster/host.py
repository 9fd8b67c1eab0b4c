"""The host side of every provider: one way to run a command, one way to write a file.

`run` is the only place the cluster package starts a short-lived process. Its error is one
actionable line (what it was doing, the command, its exit status and last line of output) followed
by the tail of the output, so a failing build, apt call or `docker` command explains itself.
Long-running daemons are started by `conformance.cluster.local.daemons`, not here.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from conformance.cluster.errors import ClusterError
from conformance.cluster.progress import progress

TAIL_LINES = 15


def tail(text: str, lines: int = TAIL_LINES) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


# Trailers tools print after the real error, e.g. docker's "Run 'docker run --help' for more information".
_HELP_TRAILER = re.compile(r"^(Run|See) '.*--help'")


def last_line(text: str) -> str:
    """The last line that says something (not a "--help" trailer)."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    lines = [line for line in lines if not _HELP_TRAILER.match(line)] or lines
    return lines[-1] if lines else "no output"


def run(
    cmd: Sequence[str],
    *,
    what: str,
    timeout: float | None = 120,
    input: str | None = None,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    check: bool = True,
    detached: bool = False,
    heartbeat: float | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `cmd`, capture its output, and on failure raise ClusterError naming `what`.

    `detached` starts it in its own session, so a Ctrl-C at the terminal cannot kill a cleanup
    step half-way. `heartbeat` prints a progress line that often while a long step (a cold Go link)
    is silent. On timeout the whole process group is killed.
    """
    argv = [str(part) for part in cmd]
    started = time.monotonic()
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=cwd,
            env=dict(env) if env is not None else None,
            start_new_session=True,
        )
    except OSError as exc:
        raise ClusterError(f"{what}: cannot run {argv[0]}: {exc.strerror}") from None
    pending = input
    try:
        while True:
            remaining = None if timeout is None else timeout - (time.monotonic() - started)
            if remaining is not None and remaining <= 0:
                _kill_group(proc)
                raise ClusterError(f"{what}: `{_short(argv)}` did not finish within {timeout:.0f}s")
            wait = min(x for x in (remaining, heartbeat, 3600.0) if x is not None)
            try:
                stdout, stderr = proc.communicate(input=pending, timeout=wait)
                break
            except subprocess.TimeoutExpired:
                pending = None  # communicate() already sent it
                if heartbeat:
                    progress(f"{what}: still running ({time.monotonic() - started:.0f}s)")
    except BaseException:
        if not detached:
            _kill_group(proc)
        raise
    result = subprocess.CompletedProcess(argv, proc.returncode, stdout, stderr)
    if check and proc.returncode != 0:
        output = stderr.strip() or stdout.strip()
        raise ClusterError(
            f"{what}: `{_short(argv)}` exited {proc.returncode}: {last_line(output)}\n{tail(output)}".rstrip()
        )
    return result


def output(cmd: Sequence[str], *, what: str, **kwargs: object) -> str:
    """stdout of a command that must succeed."""
    return run(cmd, what=what, **kwargs).stdout  # type: ignore[arg-type]


def _short(argv: Sequence[str], limit: int = 6) -> str:
    text = shlex.join(argv[:limit])
    return text + (" …" if len(argv) > limit else "")


def _kill_group(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


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


def write_executable(path: Path, text: str) -> Path:
    return write_atomic(path, text, mode=0o755)


def unescape_mountinfo(path: str) -> str:
    """Mount points in /proc/self/mountinfo escape spaces and the like as octal (\\040)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), path)


def mounts_under(prefixes: Iterable[str]) -> list[str]:
    prefixes = [p.rstrip("/") for p in prefixes]
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        mountpoint = unescape_mountinfo(line.split()[4])
        if any(mountpoint == p or mountpoint.startswith(p + "/") for p in prefixes):
            found.append(mountpoint)
    return found


def unmount_all(prefixes: Iterable[str]) -> list[str]:
    """Unmount everything below `prefixes`, deepest first; returns what could not be unmounted."""
    prefixes = list(prefixes)
    for _ in range(5):  # mounts can be stacked on one point; a few passes settle it
        mounts = sorted(set(mounts_under(prefixes)), key=lambda m: (m.count("/"), m), reverse=True)
        if not mounts:
            return []
        for mountpoint in mounts:
            if run(["umount", mountpoint], what="umount", check=False).returncode != 0:
                run(["umount", "-l", mountpoint], what="umount -l", check=False)
    return mounts_under(prefixes)
