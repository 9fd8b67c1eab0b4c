"""Where the suite keeps what outlives one process: the handle and options of the last `up`.

A cluster brought up by `python -m conformance.cluster up` is found again by later `status`,
`env` and `down` through `<state dir>/<provider>/handle.json` (and `options.json`, so `down` needs
no flags repeated). The pytest plugin asks the provider itself (`running_handle`), not these files.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from conformance.cluster.contract import ClusterHandle
from conformance.cluster.options import ClusterOptions
from conformance.infra.errors import ClusterError
from conformance.infra.files import write_private

SYSTEM_STATE_DIR = Path("/var/lib/ivc")


def state_dir() -> Path:
    """$IVC_STATE_DIR, else /var/lib/ivc, else ~/.local/state/ivc (a non-root developer running kind)."""
    if os.environ.get("IVC_STATE_DIR"):
        return Path(os.environ["IVC_STATE_DIR"])
    if _writable(SYSTEM_STATE_DIR):
        return SYSTEM_STATE_DIR
    xdg = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(xdg) / "ivc"


def _writable(path: Path) -> bool:
    existing = path
    while not existing.exists():
        existing = existing.parent
    return os.access(existing, os.W_OK | os.X_OK)


def provider_dir(provider: str) -> Path:
    return state_dir() / provider


def handle_path(provider: str) -> Path:
    return provider_dir(provider) / "handle.json"


def save(handle: ClusterHandle, options: ClusterOptions) -> Path:
    """Owner-only and atomic: the handle may carry registry credentials."""
    path = handle_path(handle.provider)
    try:
        write_private(path.with_name("options.json"), json.dumps(options.to_json(), indent=2) + "\n")
        write_private(path, handle.to_json() + "\n")
    except OSError as exc:
        raise ClusterError(f"cannot save the cluster handle to {path}: {exc.strerror}; set IVC_STATE_DIR") from exc
    return path


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ClusterError(f"cannot read {path}: {exc.strerror}") from exc


def load_handle(provider: str) -> ClusterHandle | None:
    path = handle_path(provider)
    text = _read(path)
    if text is None:
        return None
    try:
        return ClusterHandle.from_json(text)
    except (ValueError, TypeError, KeyError) as exc:
        raise ClusterError(f"cluster handle {path} is unreadable ({exc}): delete it and run `up` again") from exc


def load_options(provider: str) -> ClusterOptions | None:
    path = handle_path(provider).with_name("options.json")
    text = _read(path)
    if text is None:
        return None
    try:
        return ClusterOptions.from_json(json.loads(text))
    except (ValueError, TypeError) as exc:
        raise ClusterError(f"saved options {path} are unreadable ({exc}): delete them") from exc


def clear(provider: str) -> None:
    for name in ("handle.json", "options.json"):
        (provider_dir(provider) / name).unlink(missing_ok=True)
