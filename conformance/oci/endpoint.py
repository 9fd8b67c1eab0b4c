"""Where a registry is: how this process reaches it, how the cluster's nodes name it, and its credentials."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RegistryEndpoint:
    """A registry the suite pushes to and the cluster pulls from.

    `push` is how this process reaches it; `pull` is the host:port that references in Pods use
    (they differ on kind, where the node sees the registry under another name).
    """

    push: str
    pull: str
    username: str | None = None
    password: str | None = None
    ca_file: str | None = None  # PEM the pusher must trust; None means plain HTTP

    def __repr__(self) -> str:  # never leak credentials into reports or tracebacks
        secret = "***" if self.password else None
        return (
            f"RegistryEndpoint(push={self.push!r}, pull={self.pull!r}, username={self.username!r}, password={secret!r})"
        )
