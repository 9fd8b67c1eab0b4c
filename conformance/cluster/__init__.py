"""How the suite obtains a cluster: `make_provider(name, **options)` plus the saved handle of a running one.

Providers: `kind` (default: kind + CRI-O + local registry, needs Docker and internet), `existing`
(attach to a cluster you run, with a registry you name) and `local` (offline, host processes).
Provider modules are imported only when chosen, so `--help` and unit tests never load the
Kubernetes client or probe Docker.

A cluster brought up by `python -m conformance.cluster up` is found again by later `status`,
`env`, `down` and by the pytest plugin's `--reuse-cluster` through `<state dir>/<provider>/handle.json`.
"""

from __future__ import annotations

import importlib
import inspect
import os
import tempfile
from pathlib import Path
from typing import Any

from conformance.cluster.base import ClusterHandle, ClusterProvider
from conformance.cluster.errors import ClusterError

__all__ = [
    "DEFAULT_PROVIDER",
    "PROVIDERS",
    "ClusterError",
    "ClusterHandle",
    "ClusterProvider",
    "clear_handle",
    "handle_path",
    "load_handle",
    "make_provider",
    "parse_feature_gates",
    "provider_class",
    "save_handle",
    "state_dir",
]

DEFAULT_PROVIDER = "kind"
# name → (module, class); `local` is written by another engineer and may not exist in every checkout.
PROVIDERS: dict[str, tuple[str, str]] = {
    "kind": ("conformance.cluster.kind", "KindProvider"),
    "existing": ("conformance.cluster.existing", "ExistingProvider"),
    "local": ("conformance.cluster.local", "LocalProvider"),
}
SYSTEM_STATE_DIR = Path("/var/lib/ivc")


def provider_class(name: str) -> type:
    if name not in PROVIDERS:
        raise ClusterError(f"unknown cluster provider {name!r}: choose one of {', '.join(PROVIDERS)}")
    module_name, class_name = PROVIDERS[name]
    module = importlib.import_module(module_name)
    cls = getattr(module, class_name, None)
    if cls is None:
        raise ClusterError(f"the {name} provider is not available in this checkout ({module_name}.{class_name})")
    return cls


def make_provider(name: str, **options: Any) -> ClusterProvider:
    """Build the provider `name` (`kind`, `existing` or `local`) with its keyword options."""
    cls = provider_class(name)
    parameters = inspect.signature(cls).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        unknown = sorted(set(options) - set(parameters))
        if unknown:
            it = "it" if len(unknown) == 1 else "them"
            raise ClusterError(
                f"--cluster={name} does not take {', '.join(_flag(o) for o in unknown)}: drop {it}, "
                f"or choose the --cluster {it} belongs to"
            )
    return cls(**options)


def _flag(option: str) -> str:
    return "--" + option.replace("_", "-")


def parse_feature_gates(text: str) -> dict[str, bool]:
    """`"ImageVolume=false,Foo=true"` → `{"ImageVolume": False, "Foo": True}` (the --feature-gates syntax)."""
    gates: dict[str, bool] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or value.strip().lower() not in ("true", "false"):
            raise ClusterError(f"feature gate {item!r} is not NAME=true|false (e.g. ImageVolume=false)")
        gates[name.strip()] = value.strip().lower() == "true"
    return gates


def state_dir() -> Path:
    """Where handles and private kubeconfigs live: $IVC_STATE_DIR, else /var/lib/ivc, else ~/.local/state/ivc.

    /var/lib/ivc is the documented place (and the only one for the root-run local provider); a
    non-root developer running kind falls back to their XDG state directory.
    """
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


def handle_path(provider: str) -> Path:
    return state_dir() / provider / "handle.json"


def save_handle(handle: ClusterHandle) -> Path:
    """Write the handle atomically, owner-only (it may carry registry credentials)."""
    path = handle_path(handle.provider)
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".handle-", suffix=".json")
        with os.fdopen(fd, "w") as out:
            out.write(handle.to_json() + "\n")
        os.replace(tmp, path)
    except OSError as exc:
        raise ClusterError(f"cannot save the cluster handle to {path}: {exc.strerror}; set IVC_STATE_DIR") from exc
    return path


def load_handle(provider: str) -> ClusterHandle | None:
    """The handle saved by the last `up` for this provider, or None when there is none."""
    path = handle_path(provider)
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ClusterError(f"cannot read the cluster handle {path}: {exc.strerror}") from exc
    try:
        return ClusterHandle.from_json(text)
    except (ValueError, TypeError, KeyError) as exc:
        raise ClusterError(f"cluster handle {path} is unreadable ({exc}): delete it and run `up` again") from exc


def clear_handle(provider: str) -> None:
    handle_path(provider).unlink(missing_ok=True)
