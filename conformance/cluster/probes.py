"""Readiness probes over HTTP(S): health endpoints of daemons and registries."""

from __future__ import annotations

import ssl
import urllib.error
import urllib.request
from pathlib import Path

from conformance.infra.wait import NotYet


def http_get(url: str, *, cafile: str | Path | None = None, verify: bool = True, timeout: float = 5) -> tuple[int, str]:
    """(status, body) of a GET; HTTP error statuses are returned, connection errors raise OSError."""
    context = None
    if url.startswith("https://"):
        context = ssl.create_default_context(cafile=str(cafile) if cafile else None)
        if not verify:  # loopback health endpoints with self-signed serving certs
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as resp:
            return resp.status, resp.read().decode(errors="replace")
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(errors="replace")


def expect_status(url: str, statuses: tuple[int, ...] = (200,), **kwargs: object) -> None:
    """A probe: raises NotYet until `url` answers one of `statuses`."""
    status, body = http_get(url, **kwargs)  # type: ignore[arg-type]
    if status not in statuses:
        raise NotYet(f"{url} answered {status}: {body.strip()[:200]}")
