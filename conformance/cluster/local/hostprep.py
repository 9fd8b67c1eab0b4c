"""Host preparation before `up` and exact host cleanup after `down`.

`baseline()` records what already existed on the host (iptables chains, the bridge, cgroups,
directories) before the cluster touched it; cleanup only removes what is not in that record.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
from collections.abc import Iterable, Mapping
from pathlib import Path

from conformance.cluster import cni
from conformance.cluster.mounts import mounts_under, unescape_mountinfo, unmount_all
from conformance.infra.errors import ClusterError
from conformance.infra.process import Completed, failed, run

__all__ = ["mounts_under", "unmount_all"]  # re-exported: the provider cleans up through this module
from conformance.cluster.local import render

IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")
# Sysctls the kubelet rewrites at start (setupKernelTunables: panic=10, panic_on_oops=1,
# overcommit_memory=1, …) plus the ip_forward we set; `down` puts the host's values back.
SYSCTLS = (
    "net/ipv4/ip_forward",
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
)
OUR_CHAIN_PREFIXES = ("CNI-", "KUBE-")
IPTABLES_TOOLS = ("iptables", "ip6tables")
# Host paths the kubelet and CNI may create although our state lives elsewhere (the runtime declares its
# own: Runtime.host_paths); removed by `down` only when they did not exist before `up`.
CREATED_PATHS = ("/var/lib/cni", "/var/log/containers", "/var/lib/kubelet", "/etc/kubernetes")
# Mount points below these are ours to unmount (our state dir and the runtime's prefixes are added).
KUBELET_MOUNT_PREFIXES = ("/var/lib/kubelet", "/run/netns", "/var/run/netns")


def _quiet(cmd: list[str]) -> Completed:
    """A best-effort host command (cleanup, discovery): its failure is data, not an error."""
    try:
        return run(cmd, what=cmd[0], check=False, timeout=60)
    except ClusterError as error:  # not installed, or hung
        return failed(cmd, str(error))


def require_root() -> None:
    if os.geteuid() != 0:
        raise ClusterError("the local cluster must be managed as root (it runs kubelet, CRI-O and edits iptables)")


def host_ip() -> str:
    """The IPv4 address of the default route's interface (the apiserver needs a non-loopback one)."""
    out = _quiet(["ip", "-4", "-o", "route", "show", "default"])
    dev = re.search(r"\bdev (\S+)", out.stdout)
    devices = [dev.group(1)] if dev else []
    addrs = _quiet(["ip", "-4", "-o", "addr", "show", "scope", "global"])
    candidates = re.findall(r"^\d+:\s+(\S+)\s+inet (\d+\.\d+\.\d+\.\d+)/", addrs.stdout, re.MULTILINE)
    for name, addr in candidates:
        if name in devices:
            return addr
    if candidates:  # no default route: any global address still works for advertise/node IP
        return candidates[0][1]
    raise ClusterError("this host has no global IPv4 address: the apiserver needs one to advertise")


# --- ports ------------------------------------------------------------------------------------

_SS_USER = re.compile(r'\("([^"]+)",pid=(\d+)')


def listeners(ports: Iterable[int]) -> dict[int, tuple[str, int]]:
    """port → (process name, pid) for TCP listeners on any of `ports`."""
    wanted = set(ports)
    out = _quiet(["ss", "-Hltnp"]).stdout
    found: dict[int, tuple[str, int]] = {}
    for line in out.splitlines():
        fields = line.split()
        if len(fields) < 4:
            continue
        port = fields[3].rsplit(":", 1)[-1]
        if port.isdigit() and int(port) in wanted:
            user = _SS_USER.search(line)
            found[int(port)] = (user.group(1), int(user.group(2))) if user else ("an unknown process", 0)
    return found


def check_ports_free(ports: Mapping[str, int], ours: Iterable[int] = ()) -> None:
    ours = set(ours)
    for port, (name, pid) in sorted(listeners(ports.values()).items()):
        if pid in ours:
            continue
        component = next(c for c, p in ports.items() if p == port)
        raise ClusterError(
            f"port {port} (needed by {component}) is in use by {name} (pid {pid}): stop it, "
            "or run `python -m conformance.cluster down --provider local` if a local cluster left it behind"
        )


# --- preparation --------------------------------------------------------------------------


def prepare() -> None:
    # / is a private mount here; the kubelet and CRI-O need shared propagation for pod mounts.
    run(["mount", "--make-rshared", "/"], what="mount --make-rshared /")
    IP_FORWARD.write_text("1\n")


def iptables_chains() -> dict[str, dict[str, list[str]]]:
    """tool → table → chains named CNI-*/KUBE-*."""
    result: dict[str, dict[str, list[str]]] = {}
    for tool in IPTABLES_TOOLS:
        tables: dict[str, list[str]] = {}
        for table, chains, _ in _iptables_save(tool):
            tables[table] = sorted(c for c in chains if c.startswith(OUR_CHAIN_PREFIXES))
        result[tool] = tables
    return result


def cgroup_mounts() -> list[Path]:
    mounts = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        pre, _, post = line.partition(" - ")
        if post.split(" ", 1)[0] in ("cgroup", "cgroup2"):
            mounts.append(Path(unescape_mountinfo(pre.split()[4])))
    return mounts


def cgroup_controller_mounted(controller: str) -> bool:
    """Whether a cgroup v1 hierarchy with `controller` is mounted (always true on pure cgroup v2)."""
    if Path("/sys/fs/cgroup/cgroup.controllers").exists():
        return True
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        _, _, post = line.partition(" - ")
        fields = post.split()
        if fields and fields[0] == "cgroup" and controller in fields[-1].split(","):
            return True
    return False


def kubepods_cgroups() -> list[str]:
    return sorted(str(mp / "kubepods") for mp in cgroup_mounts() if (mp / "kubepods").is_dir())


def baseline(runtime_paths: Iterable[str]) -> dict[str, object]:
    return {
        "iptables": iptables_chains(),
        "bridge": Path(f"/sys/class/net/{render.CNI_BRIDGE}").exists(),
        "cgroups": kubepods_cgroups(),
        "paths": [p for p in (*CREATED_PATHS, *runtime_paths) if os.path.lexists(p)],
        "sysctls": read_sysctls(),
    }


def read_sysctls() -> dict[str, str]:
    values = {}
    for key in SYSCTLS:
        with contextlib.suppress(OSError):
            values[key] = Path("/proc/sys", key).read_text().strip()
    return values


# --- cleanup ------------------------------------------------------------------------------


def delete_bridge(existed_before: bool) -> None:
    bridge = render.CNI_BRIDGE
    if existed_before or not Path(f"/sys/class/net/{bridge}").exists():
        return
    # Veths normally vanish with their netns; any left behind still hang on our bridge.
    out = _quiet(["ip", "-o", "link", "show", "master", bridge])
    for match in re.finditer(r"^\d+:\s+([^:@\s]+)", out.stdout, re.MULTILINE):
        _quiet(["ip", "link", "delete", match.group(1)])
    _quiet(["ip", "link", "delete", bridge])


def _iptables_save(tool: str) -> list[tuple[str, list[str], list[list[str]]]]:
    """[(table, chains, rules as argv after -A)] from `<tool>-save`; empty if the tool is missing."""
    out = _quiet([f"{tool}-save"]).stdout
    tables: list[tuple[str, list[str], list[list[str]]]] = []
    for line in out.splitlines():
        if line.startswith("*"):
            tables.append((line[1:].strip(), [], []))
        elif line.startswith(":") and tables:
            tables[-1][1].append(line[1:].split()[0])
        elif line.startswith("-A ") and tables:
            tables[-1][2].append(shlex.split(line)[1:])
    return tables


def _jump_target(rule: list[str]) -> str | None:
    for flag in ("-j", "-g", "--jump", "--goto"):
        if flag in rule and rule.index(flag) + 1 < len(rule):
            return rule[rule.index(flag) + 1]
    return None


def delete_iptables_chains(before: Mapping[str, Mapping[str, list[str]]]) -> list[str]:
    """Delete CNI-*/KUBE-* chains that were not there before `up`, and every rule jumping to them."""
    removed = []
    for tool in IPTABLES_TOOLS:
        for table, chains, rules in _iptables_save(tool):
            existing = set(before.get(tool, {}).get(table, []))
            ours = {c for c in chains if c.startswith(OUR_CHAIN_PREFIXES) and c not in existing}
            if not ours:
                continue
            for rule in rules:
                chain = rule[0]
                if chain not in ours and _jump_target(rule) in ours:
                    _quiet([tool, "-w", "-t", table, "-D", *rule])
            for chain in ours:
                _quiet([tool, "-w", "-t", table, "-F", chain])
            for chain in sorted(ours):
                _quiet([tool, "-w", "-t", table, "-X", chain])
                removed.append(f"{tool} -t {table} {chain}")
    return removed


def pids_in_cgroups(roots: Iterable[str]) -> list[int]:
    pids: set[int] = set()
    for root in roots:
        for dirpath, _, files in os.walk(root):
            if "cgroup.procs" in files:
                with contextlib.suppress(OSError):
                    pids.update(int(p) for p in Path(dirpath, "cgroup.procs").read_text().split())
    return sorted(pids)


def kill_cgroup_members(before: Iterable[str]) -> None:
    """Container processes left in our kubepods cgroups (e.g. after CRI-O died) are ours to kill."""
    ours = [c for c in kubepods_cgroups() if c not in set(before)]
    for pid in pids_in_cgroups(ours):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def remove_cgroups(before: Iterable[str]) -> list[str]:
    """rmdir our kubepods hierarchies bottom-up (never remount: cgroup v1 hybrid must stay as is)."""
    leftover = []
    for root in kubepods_cgroups():
        if root in set(before):
            continue
        for dirpath, _, _ in sorted(os.walk(root), key=lambda entry: entry[0].count("/"), reverse=True):
            try:
                os.rmdir(dirpath)
            except OSError:
                leftover.append(dirpath)
    return leftover


def remove_created_paths(before: Iterable[str], runtime_paths: Iterable[str]) -> None:
    existed = set(before)
    for path in (*CREATED_PATHS, *runtime_paths):
        if path not in existed and os.path.lexists(path):
            shutil.rmtree(path, ignore_errors=True)
    # libcni keeps per-attachment results in /var/lib/cni/results/<network>-<id>-<if>, even when
    # that directory belongs to someone else: remove only our network's files.
    for stale in Path("/var/lib/cni/results").glob(f"{cni.NETWORK}-*"):
        stale.unlink(missing_ok=True)


def restore_sysctls(before: Mapping[str, str]) -> None:
    current = read_sysctls()
    for key, value in before.items():
        if key in SYSCTLS and current.get(key) != value:
            with contextlib.suppress(OSError):
                Path("/proc/sys", key).write_text(value + "\n")
