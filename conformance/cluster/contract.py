"""The provider contract: what every provider is told (`ClusterOptions`) and hands back (`ClusterHandle`).

Providers hide how a cluster came to be; tests only ever see a handle. The handle crosses the
xdist controller→worker boundary as JSON, so it holds paths and strings, never clients.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Protocol

__all__ = ["ClusterHandle", "ClusterProvider", "NodeAccess", "RegistryEndpoint", "export_lines"]

from conformance.cluster.options import COMMAND_PLACEHOLDER, NODE_PLACEHOLDER, ClusterOptions
from conformance.oci.endpoint import RegistryEndpoint


@dataclass(frozen=True)
class NodeAccess:
    """How to look behind the API on a node: crictl, and the runtime's and kubelet's logs.

    Empty for existing clusters unless the user opts in (--node-command): diagnostics then fall back to the
    API alone, and the checks that need a node do not apply.
    """

    # Runs a command on node "{node}"; () = on this host. The command's argv is appended, or, where one
    # part is "{command}", put there as one shell-quoted string (ssh hands the remote shell one string).
    command: tuple[str, ...] = ()
    crictl: str | None = None  # crictl on the node, pointed at its runtime
    logs: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # component → command printing its log
    collect: tuple[str, ...] = ()  # a command on this host writing every node's logs into "{dir}"
    # "kubelet" / "runtime" → a command (run with `on`) that restarts it on the node and returns once it
    # serves again, leaving running containers alone; empty where the suite may not disrupt the nodes.
    restart: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def available(self) -> bool:
        return self.crictl is not None

    def on(self, node: str, *argv: str) -> list[str]:
        """`argv` as it runs on `node`."""
        prefix = [part.replace(NODE_PLACEHOLDER, node) for part in self.command]
        if COMMAND_PLACEHOLDER in prefix:
            return [shlex.join(argv) if part == COMMAND_PLACEHOLDER else part for part in prefix]
        return prefix + list(argv)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> NodeAccess:
        """From JSON, where tuples arrived as lists."""
        return cls(
            command=tuple(raw.get("command") or ()),
            crictl=raw.get("crictl"),
            logs={name: tuple(argv) for name, argv in (raw.get("logs") or {}).items()},
            collect=tuple(raw.get("collect") or ()),
            restart={name: tuple(argv) for name, argv in (raw.get("restart") or {}).items()},
        )


@dataclass(frozen=True)
class ClusterHandle:
    provider: str
    kubeconfig: str
    context: str | None
    registry: RegistryEndpoint
    auth_registry: RegistryEndpoint | None = None  # TLS + htpasswd, for pull-secret tests
    node_access: NodeAccess = field(default_factory=NodeAccess)
    created_by_run: bool = False  # True when `up` created what `down` removes
    description: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ClusterHandle:
        raw = json.loads(text)
        raw["registry"] = RegistryEndpoint(**raw["registry"])
        if raw.get("auth_registry"):
            raw["auth_registry"] = RegistryEndpoint(**raw["auth_registry"])
        raw["node_access"] = NodeAccess.from_dict(raw.get("node_access") or {})
        return cls(**raw)

    def exports(self) -> dict[str, str]:
        """The environment that points kubectl and scripts at this cluster."""
        env = {"KUBECONFIG": self.kubeconfig, "IVC_REGISTRY": self.registry.pull}
        if self.context:
            env["IVC_CONTEXT"] = self.context
        return env


def export_lines(env: dict[str, str]) -> list[str]:
    return [f"export {key}={shlex.quote(value)}" for key, value in env.items()]


class ClusterProvider(Protocol):
    """One per way of obtaining a cluster: `kind`, `existing`, `local` (declared in `PROVIDERS`)."""

    name: ClassVar[str]

    def __init__(self, options: ClusterOptions) -> None: ...

    def up(self, *, keep: bool = True) -> ClusterHandle:
        """Create (or reuse) the cluster and return its coordinates. Raises ClusterError; a failed or
        interrupted `up` removes what it had created before it raises. `keep`: the caller leaves the cluster
        running (`up`, --keep-cluster); else a later run that finds it and its owner gone may replace it."""
        ...

    def running_handle(self) -> ClusterHandle | None:
        """The handle of this provider's cluster if it is up and usable, else None. Starts nothing; refuses
        (ClusterError, one line) a cluster that differs from the settings the user named, and removes one
        that a killed run left, so that the caller brings up the one asked for."""
        ...

    def down(self) -> None:
        """Remove everything the suite created for this cluster. Safe to call twice and after a failed `up`."""
        ...

    def status(self) -> str:
        """Human-readable: running or not, versions, kubeconfig and log locations."""
        ...

    def env(self) -> dict[str, str]:
        """`KUBECONFIG`, `IVC_REGISTRY`… of the running cluster; ClusterError when there is none."""
        ...

    def prepare(self) -> str:
        """Build everything `up` will need (binaries, node image) without starting anything; says what."""
        ...

    def restart(self, component: str, node: str | None = None) -> None:
        """Restart the kubelet or the runtime (`component`) on `node` (every node: None), leaving running
        containers alone; return once it serves again. ClusterError where the suite may not."""
        ...
