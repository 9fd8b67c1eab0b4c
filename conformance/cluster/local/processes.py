"""Daemons as plain host processes: start with a log and a pid file, wait (bounded), stop exactly.

A process is identified by (pid, start time from /proc/<pid>/stat), so a recycled pid is never
signalled. Waits use tenacity with a deadline and fail with the component's log tail.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TypeVar

from tenacity import RetryError, Retrying, retry_if_exception_type, stop_after_delay, wait_exponential

from conformance.cluster.errors import ClusterError

T = TypeVar("T")
LOG_TAIL_LINES = 20


@dataclass(frozen=True)
class ProcessRecord:
    name: str
    pid: int
    start_ticks: int  # field 22 of /proc/<pid>/stat: guards against pid reuse
    log: str

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: Mapping[str, object]) -> ProcessRecord:
        return cls(name=str(raw["name"]), pid=int(raw["pid"]), start_ticks=int(raw["start_ticks"]), log=str(raw["log"]))  # type: ignore[arg-type]


def _stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start ticks) of a process, or None if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may contain spaces and parentheses: split after the last ')'.
    fields = raw[raw.rindex(")") + 2 :].split()
    return fields[0], int(fields[19])


def start_ticks(pid: int) -> int | None:
    stat = _stat(pid)
    return stat[1] if stat else None


def _reap(pid: int) -> None:
    """Collect our own exited children so they don't linger as zombies while we run."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def alive(record: ProcessRecord) -> bool:
    _reap(record.pid)
    stat = _stat(record.pid)
    return stat is not None and stat[1] == record.start_ticks and stat[0] not in ("Z", "X")


def log_tail(path: str | Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.rstrip("\n").splitlines()[-lines:])


def with_log(message: str, log: str | Path) -> str:
    return f"{message}\n--- last {LOG_TAIL_LINES} lines of {log} ---\n{log_tail(log)}"


def start(
    name: str, argv: Sequence[str], *, log: Path, pid_dir: Path, env: Mapping[str, str] | None = None
) -> ProcessRecord:
    """Start a daemon detached from our session (Ctrl-C must not reach it; `down` stops it)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    pid_dir.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        out.write(f"\n=== ivc: starting {name}: {' '.join(argv)}\n".encode())
        out.flush()
        try:
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else None,
                start_new_session=True,
                close_fds=True,
            )
        except OSError as exc:
            raise ClusterError(f"cannot start {name}: {argv[0]}: {exc.strerror}") from exc
    ticks = start_ticks(proc.pid)
    if ticks is None:  # exited before we could look: report it with its log
        proc.wait()
        raise ClusterError(with_log(f"{name} exited immediately with status {proc.returncode}", log))
    (pid_dir / f"{name}.pid").write_text(f"{proc.pid}\n")
    return ProcessRecord(name=name, pid=proc.pid, start_ticks=ticks, log=str(log))


class _NotYet(Exception):
    """Raised by a readiness probe that should be retried."""


def not_yet(reason: str) -> _NotYet:
    return _NotYet(reason)


def wait_for(
    what: str,
    probe: Callable[[], T],
    *,
    timeout: float,
    record: ProcessRecord | None = None,
    log: str | Path | None = None,
) -> T:
    """Retry `probe` until it returns, raising ClusterError with the log tail on timeout.

    The probe raises `not_yet(reason)` (or OSError) to be retried; if `record` died meanwhile we
    fail at once instead of waiting out the deadline.
    """
    log = log or (record.log if record else None)

    def attempt() -> T:
        if record is not None and not alive(record):
            raise ClusterError(with_log(f"{record.name} exited while waiting for {what}", record.log))
        return probe()

    retrying = Retrying(
        stop=stop_after_delay(timeout),
        wait=wait_exponential(multiplier=0.1, max=2),
        retry=retry_if_exception_type((_NotYet, OSError)),
        reraise=False,
    )
    try:
        return retrying(attempt)
    except RetryError as err:
        reason = err.last_attempt.exception()
        message = f"timed out after {timeout:.0f}s waiting for {what} (last: {reason})"
        raise ClusterError(with_log(message, log) if log else message) from None


def stop(record: ProcessRecord, *, timeout: float = 20.0) -> None:
    """SIGTERM, bounded wait, then SIGKILL — only if the recorded process is still the same one."""
    if not alive(record):
        return
    try:
        os.kill(record.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        wait_for(f"{record.name} to exit", lambda: _gone(record), timeout=timeout)
        return
    except ClusterError:
        pass
    if alive(record):
        try:
            os.kill(record.pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        wait_for(f"{record.name} to exit after SIGKILL", lambda: _gone(record), timeout=10)


def _gone(record: ProcessRecord) -> None:
    if alive(record):
        raise not_yet("still running")


def kill_pids(pids: Sequence[int], *, timeout: float = 10.0) -> None:
    """SIGKILL a set of pids found by exact criteria (e.g. our conmons), then wait for them."""
    records = []
    for pid in pids:
        ticks = start_ticks(pid)
        if ticks is None:
            continue
        records.append(ProcessRecord(name=f"pid {pid}", pid=pid, start_ticks=ticks, log=""))
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    for record in records:
        wait_for(f"{record.name} to exit after SIGKILL", lambda r=record: _gone(r), timeout=timeout)


def processes_with_arg(executable_name: str, needle: str) -> list[int]:
    """Pids whose argv[0] ends in `executable_name` and whose command line contains `needle`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if (
            argv
            and os.path.basename(argv[0].decode(errors="replace")) == executable_name
            and any(needle.encode() in arg for arg in argv[1:])
        ):
            found.append(int(entry.name))
    return found


def run(cmd: Sequence[str], *, what: str, timeout: float = 120, input: str | None = None) -> str:
    """Run a short host command; failure → ClusterError naming `what` and the last error line."""
    try:
        proc = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, input=input, check=False)
    except subprocess.TimeoutExpired:
        raise ClusterError(f"{what}: `{' '.join(cmd)}` did not finish within {timeout:.0f}s") from None
    except OSError as exc:
        raise ClusterError(f"{what}: cannot run {cmd[0]}: {exc.strerror}") from None
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        raise ClusterError(f"{what}: `{' '.join(cmd[:4])}…` exited {proc.returncode}: {lines[-1] if lines else ''}")
    return proc.stdout
