"""Node access on nodes that run their kubelet and runtime as systemd units: kind's node containers, and
the nodes of an existing cluster the user lets the suite reach (`--node-command`).

One declaration for both, so a kind node and a user's node are looked at, and restarted, the same way.
"""

from __future__ import annotations

from conformance.cluster.contract import NodeAccess
from conformance.cluster.runtimes import RUNTIMES

__all__ = ["restart_commands", "runtime_units", "systemd_node_access"]

KUBELET_RESTART = ("systemctl", "restart", "kubelet")


def runtime_units() -> list[str]:
    """Every declared runtime's systemd units. A node runs one of them, and not necessarily the one the
    command line names: nodes differ in a pool mid-upgrade, and a cluster may be tested without its options."""
    return list(dict.fromkeys(unit for each in RUNTIMES.values() for unit in each.log_units))


def runtime_restart() -> tuple[str, ...]:
    """Restarts whichever declared runtime the node runs, returning once the unit notifies it serves."""
    units = " ".join(runtime_units())
    return ("sh", "-c", f'for unit in {units}; do systemctl is-active -q "$unit" && exec systemctl restart '
            f'"$unit"; done; echo "none of the runtime units {units} is active" >&2; exit 1')  # fmt: skip


def restart_commands() -> dict[str, tuple[str, ...]]:
    """ "kubelet" / "runtime" → the command that restarts it on a systemd node."""
    return {"kubelet": KUBELET_RESTART, "runtime": runtime_restart()}


def systemd_node_access(command: tuple[str, ...], *, restarts: bool, collect: tuple[str, ...] = ()) -> NodeAccess:
    """crictl, the mount table and the journals through `command` ("{node}" in it names the node); the
    kubelet and runtime restarts only where `restarts` (the suite built the cluster, or the user allowed it)."""
    journal = ("journalctl", "--no-pager", "-o", "short-iso")
    return NodeAccess(
        command=command,
        crictl="crictl",
        logs={
            "runtime": (*journal, *(arg for unit in runtime_units() for arg in ("-u", unit))),
            "kubelet": (*journal, "-u", "kubelet"),
        },
        collect=collect,
        restart=restart_commands() if restarts else {},
    )
