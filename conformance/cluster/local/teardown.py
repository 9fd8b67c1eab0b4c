"""Taking a local cluster down: its daemons in reverse start order, then the host as it was before `up`.

The host-wide part (mounts, bridge, iptables chains, cgroups, created paths, sysctls) only touches
what the baseline recorded before `up` shows to be new; without a baseline only the state directory
is handled, because someone else's chains and directories cannot be told from ours.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from conformance.cluster.daemons import ProcessRecord, stop
from conformance.cluster.local import hostprep
from conformance.cluster.local.plan import CNI_CONFLIST, USER_RUNTIME_CNI_DIR, LocalPlan
from conformance.cluster.local.render import Layout
from conformance.infra.errors import ClusterError
from conformance.infra.progress import progress


def teardown(plan: LocalPlan, records: Mapping[str, ProcessRecord], baseline: Mapping[str, Any] | None) -> None:
    """Stop every recorded daemon (newest first) and restore the host; the state directory goes last."""
    layout = plan.layout
    daemons = {daemon.name: daemon for daemon in plan.daemons()}
    for name in reversed(list(records)):
        daemon = daemons.get(name)
        if daemon is not None and daemon.before_stop is not None:
            daemon.before_stop()
        progress(f"stopping {name}")
        stop(records[name])
        if daemon is not None and daemon.after_stop is not None:
            daemon.after_stop()
    if baseline is None:
        progress("no record of the host before `up`: cleaning up only below " + str(layout.state))
        leftover = hostprep.unmount_all([str(layout.state)])
    else:
        progress("cleaning up mounts, network, iptables and cgroups")
        hostprep.kill_cgroup_members(baseline.get("cgroups", []))
        # A user's runtime keeps its own storage mounts: only the kubelet's and ours are unmounted.
        prefixes = (*hostprep.KUBELET_MOUNT_PREFIXES, *plan.runtime.mount_prefixes)
        leftover = hostprep.unmount_all([str(layout.state), *prefixes])
        hostprep.delete_bridge(bool(baseline.get("bridge", False)))
        hostprep.delete_iptables_chains(baseline.get("iptables", {}))
        hostprep.remove_cgroups(baseline.get("cgroups", []))
        hostprep.remove_created_paths(baseline.get("paths", []), plan.host_paths())
        hostprep.restore_sysctls(baseline.get("sysctls", {}))
    if leftover:
        # Deleting through a live mount would write into the mounted filesystem: keep the state.
        raise ClusterError(
            f"could not unmount {leftover[0]} (and {len(leftover) - 1} more); state kept in {layout.state}"
        )
    if plan.external_runtime:
        (USER_RUNTIME_CNI_DIR / CNI_CONFLIST).unlink(missing_ok=True)  # the directory stays for that runtime
    shutil.rmtree(layout.state, ignore_errors=True)
    if layout.state.exists():
        raise ClusterError(f"could not remove {layout.state}: remove it by hand")


def keep_logs(layout: Layout) -> Path | None:
    """`down` removes the state directory, logs included: keep them where the next `up` does not look."""
    if not layout.logs.is_dir():
        return None
    kept = layout.state.with_name(layout.state.name + "-failed-logs")
    shutil.rmtree(kept, ignore_errors=True)
    shutil.copytree(layout.logs, kept)
    return kept
