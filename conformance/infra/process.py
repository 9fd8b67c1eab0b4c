"""The one way to run a command: `run` for one that ends, `spawn` for a daemon that keeps running.

Nothing else in the suite calls subprocess. `run`'s error is one actionable line (what it was doing,
the command, its exit status and last line of output) followed by the tail of the output, so a
failing build, apt call or `docker` command explains itself.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from conformance.infra.errors import ClusterError
from conformance.infra.progress import progress

TAIL_LINES = 15
Completed = subprocess.CompletedProcess[str]


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
    capture: bool = True,
) -> Completed:
    """Run `cmd`, capture its output, and on failure raise ClusterError naming `what`.

    `detached` starts it in its own session, so a Ctrl-C at the terminal cannot kill a cleanup
    step half-way. `heartbeat` prints a progress line that often while a long step (a cold Go link)
    is silent. `capture=False` lets its output through to this process's (a benchmark's phases). On
    timeout the whole process group is killed.
    """
    argv = [str(part) for part in cmd]
    started = time.monotonic()
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE if capture else None,
            stderr=subprocess.PIPE if capture else None,
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
    result = subprocess.CompletedProcess(argv, proc.returncode, stdout or "", stderr or "")
    if check and proc.returncode != 0:
        output = result.stderr.strip() or result.stdout.strip()
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


def spawn(argv: Sequence[str], *, what: str, log: Path, env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    """Start a daemon detached from our session (Ctrl-C must not reach it), its output appended to `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        out.write(f"\n=== ivc: starting {what}: {' '.join(argv)}\n".encode())
        out.flush()
        try:
            return subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=dict(env),
                start_new_session=True,
                close_fds=True,
            )
        except OSError as exc:
            raise ClusterError(f"cannot start {what}: {argv[0]}: {exc.strerror}") from exc


def failed(argv: Sequence[str], reason: str, returncode: int = 127) -> Completed:
    """The result of a command that could not run at all, for callers that treat failure as data."""
    return subprocess.CompletedProcess(list(argv), returncode, "", reason)
