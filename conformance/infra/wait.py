"""The one polling wait: bounded, explained, and over as soon as it is decided.

A probe returns its result, or raises `NotYet(reason)` to be retried (OSError counts as "not yet"
too: a socket that is not there yet). `gone` is asked before every attempt and ends the wait at once
with its answer when the thing being waited on can no longer succeed (the daemon exited). On
timeout the error (`WaitTimeout`) names what was awaited, the last reason and, when given, the log tail.

API objects are not polled: `conformance.infra.kube.Kube.watch_until` watches them, and ends with the same
`WaitTimeout`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from tenacity import RetryError, Retrying, retry_if_exception_type, stop_after_delay, wait_exponential

from conformance.infra.errors import ClusterError

T = TypeVar("T")
LOG_TAIL_LINES = 20


class WaitTimeout(ClusterError, AssertionError):
    """A bounded wait ran out; the message says what was awaited and what was seen.

    A ClusterError, so a provider's caller reports it in one line; an AssertionError, so a test that
    waits in vain fails (not errors).
    """


class NotYet(Exception):
    """Raised by a probe whose condition does not hold yet; the message says what it saw."""


def log_tail(path: str | Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.rstrip("\n").splitlines()[-lines:])


def with_log(message: str, log: str | Path | None) -> str:
    if log is None:
        return message
    return f"{message}\n--- last {LOG_TAIL_LINES} lines of {log} ---\n{log_tail(log)}"


def wait_for(
    what: str,
    probe: Callable[[], T],
    *,
    timeout: float,
    gone: Callable[[], str | None] | None = None,
    log: str | Path | None = None,
    interval: float = 2.0,
) -> T:
    """Retry `probe` until it returns (its value is returned), with back-off up to `interval`."""

    def attempt() -> T:
        if gone is not None and (reason := gone()):
            raise ClusterError(with_log(f"{reason} while waiting for {what}", log))
        return probe()

    retrying = Retrying(
        stop=stop_after_delay(timeout),
        wait=wait_exponential(multiplier=0.1, max=interval),
        retry=retry_if_exception_type((NotYet, OSError)),
        reraise=False,
    )
    try:
        return retrying(attempt)
    except RetryError as err:
        reason = err.last_attempt.exception()
        raise WaitTimeout(
            with_log(f"timed out after {timeout:.0f}s waiting for {what} (last: {reason})", log)
        ) from None
