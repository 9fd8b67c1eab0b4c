"""How the suite obtains a cluster: `make_provider(options)` for a provider declared in `PROVIDERS`.

Providers: `kind` (the default: a kind cluster on CRI-O, node image built here), `existing` (a
cluster you run, with a registry you name) and `local` (offline, host processes). A provider is
declared by name and module in `options.PROVIDERS`, beside the flags it takes; its module is
imported only when chosen. This package never imports a provider.
"""

from __future__ import annotations

import importlib

from conformance.cluster.contract import ClusterHandle, ClusterProvider
from conformance.cluster.options import DEFAULT_PROVIDER, PROVIDERS, ClusterOptions
from conformance.infra.errors import ClusterError

__all__ = [
    "DEFAULT_PROVIDER",
    "PROVIDERS",
    "ClusterError",
    "ClusterHandle",
    "ClusterOptions",
    "ClusterProvider",
    "make_provider",
]


def make_provider(options: ClusterOptions) -> ClusterProvider:
    """The provider `options.provider`, told `options`."""
    module_name, class_name = PROVIDERS[options.provider]
    provider: type[ClusterProvider] = getattr(importlib.import_module(module_name), class_name)
    return provider(options)
