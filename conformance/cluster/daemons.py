"""Long-running host processes, declared as data and supervised by one piece of code.

A `Daemon` says everything about one process: its name (which also names its log file), its
command line and environment, the probe that says it is ready and how long that may take, what to
do once it is ready, and what to do just before and after it is stopped. The local provider starts
a list of them in order, waits for each, reports their health, and stops them in reverse order;
a runtime contributes its own daemons to that list.

A started process is remembered as a `ProcessRecord`: (pid, start time from /proc/<pid>/stat), so
a recycled pid is never signalled.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from conformance.infra.errors import ClusterError
from conformance.infra.files import write_atomic
from conformance.infra.process import spawn
from conformance.infra.wait import NotYet, wait_for, with_log


@dataclass(frozen=True)
class Daemon:
    name: str
    argv: tuple[str, ...]
    ready: Callable[[], object]  # raises NotYet (or OSError) until the daemon serves
    timeout: float  # seconds `ready` may take
    env: Mapping[str, str] = field(default_factory=dict)
    after_ready: Callable[[], object] | None = None  # once ready (e.g. RBAC after the apiserver)
    before_stop: Callable[[], object] | None = None  # e.g. remove pod sandboxes through the runtime
    after_stop: Callable[[], object] | None = None  # e.g. kill the runtime's double-forked monitors


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
        return cls(
            name=str(raw["name"]),
            pid=int(str(raw["pid"])),
            start_ticks=int(str(raw["start_ticks"])),
            log=str(raw["log"]),
        )


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


def this_process(name: str) -> ProcessRecord:
    """This process, as a record a later process can test with `alive` (pid reuse guarded)."""
    pid = os.getpid()
    return ProcessRecord(name, pid, start_ticks(pid) or 0, "")


def owner_alive(raw: object) -> bool:
    """`alive` for a record saved as a dict (an owner's `this_process().to_dict()`); False when unreadable."""
    try:
        return isinstance(raw, dict) and alive(ProcessRecord.from_dict(raw))
    except (KeyError, ValueError):
        return False


def alive(record: ProcessRecord) -> bool:
    with contextlib.suppress(ChildProcessError):  # reap our own exited children
        os.waitpid(record.pid, os.WNOHANG)
    stat = _stat(record.pid)
    return stat is not None and stat[1] == record.start_ticks and stat[0] not in ("Z", "X")


def exited(record: ProcessRecord) -> Callable[[], str | None]:
    """A `gone` check for waits: the daemon exited, so waiting on it is over."""
    return lambda: None if alive(record) else f"{record.name} (pid {record.pid}) exited"


def start(daemon: Daemon, *, log: Path, pid_dir: Path, base_env: Mapping[str, str]) -> ProcessRecord:
    """Start a daemon detached from our session (Ctrl-C must not reach it; stop() ends it)."""
    pid_dir.mkdir(parents=True, exist_ok=True)
    proc = spawn(daemon.argv, what=daemon.name, log=log, env={**base_env, **daemon.env})
    ticks = start_ticks(proc.pid)
    if ticks is None:  # exited before we could look: report it with its log
        proc.wait()
        raise ClusterError(with_log(f"{daemon.name} exited immediately with status {proc.returncode}", log))
    write_atomic(pid_dir / f"{daemon.name}.pid", f"{proc.pid}\n")
    return ProcessRecord(name=daemon.name, pid=proc.pid, start_ticks=ticks, log=str(log))


def wait_ready(daemon: Daemon, record: ProcessRecord) -> None:
    wait_for(f"{daemon.name} to be ready", daemon.ready, timeout=daemon.timeout, gone=exited(record), log=record.log)
    if daemon.after_ready is not None:
        daemon.after_ready()


def stop(record: ProcessRecord, *, timeout: float = 30.0) -> None:
    """SIGTERM, bounded wait, then SIGKILL — only while the recorded process is still the same one."""
    for sig, allowed in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
        if not alive(record):
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(record.pid, sig)
        with contextlib.suppress(ClusterError):
            wait_for(f"{record.name} to exit", lambda: _gone(record), timeout=allowed, interval=0.5)
    if alive(record):
        raise ClusterError(f"{record.name} (pid {record.pid}) survived SIGKILL")


def _gone(record: ProcessRecord) -> None:
    if alive(record):
        raise NotYet("still running")


def kill_all(pids: Sequence[int], *, timeout: float = 10.0) -> None:
    """SIGKILL a set of pids found by exact criteria (our runtime's monitors), then wait for them."""
    records = []
    for pid in pids:
        ticks = start_ticks(pid)
        if ticks is None:
            continue
        records.append(ProcessRecord(name=f"pid {pid}", pid=pid, start_ticks=ticks, log=""))
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    for record in records:
        wait_for(
            f"{record.name} to exit after SIGKILL", functools.partial(_gone, record), timeout=timeout, interval=0.5
        )


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


def systemd_unit(daemon: Daemon, *, description: str, service_type: str = "simple", before: str = "") -> str:
    """The same declaration as a systemd service, for nodes that have an init (the kind node image).

    No Limit*= or OOMScoreAdjust=: a kind node on a host without CAP_SYS_RESOURCE may not raise its limits.
    """
    environment = "".join(f'Environment="{key}={value}"\n' for key, value in sorted(daemon.env.items()))
    return (
        f"[Unit]\nDescription={description}\nAfter=network.target\n"
        + (f"Before={before}\n" if before else "")
        + f"\n[Service]\nType={service_type}\n{environment}ExecStart={' '.join(daemon.argv)}\n"
        + "ExecReload=/bin/kill -s HUP $MAINPID\nRestart=on-failure\nRestartSec=2\nDelegate=yes\nKillMode=mixed\n"
        + "\n[Install]\nWantedBy=multi-user.target\n"
    )
