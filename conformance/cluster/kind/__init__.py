"""The `kind` cluster provider: config (pure), node image, registry container, tools, provider."""

from conformance.cluster.kind.provider import KindProvider

__all__ = ["KindProvider"]
