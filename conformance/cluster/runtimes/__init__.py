"""Container runtimes, declared: what to build and install, how to configure them, which daemons run.

A runtime is a `Runtime` (see `base.py`) registered in `RUNTIMES`. The local provider starts the
daemons it declares; the kind node-image builder writes the same configuration files into the node
image (with systemd paths and the systemd cgroup manager). Adding a runtime means adding a module
with one `Runtime` and a line here, never editing a provider's bring-up.
"""

from __future__ import annotations

from conformance.cluster.runtimes.base import NodeSetup, Runtime
from conformance.cluster.runtimes.containerd import CONTAINERD_RUNTIME
from conformance.cluster.runtimes.crio import CRIO_RUNTIME
from conformance.cluster.runtimes.external import ExternalRuntime
from conformance.infra.errors import ClusterError

__all__ = ["RUNTIMES", "NodeSetup", "Runtime", "runtime", "select"]

RUNTIMES: dict[str, Runtime] = {CRIO_RUNTIME.name: CRIO_RUNTIME, CONTAINERD_RUNTIME.name: CONTAINERD_RUNTIME}


def select(name: str | None, endpoint: str | None = None) -> Runtime:
    """The runtime the options name: a declared one (default CRI-O), or the user's own at `endpoint`."""
    if endpoint:
        return ExternalRuntime(endpoint)
    return runtime(name or CRIO_RUNTIME.name)


def runtime(name: str) -> Runtime:
    try:
        return RUNTIMES[name]
    except KeyError:
        raise ClusterError(f"unknown runtime {name!r}: choose one of {', '.join(RUNTIMES)}") from None
