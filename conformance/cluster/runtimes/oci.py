"""runc for hosts that withhold a capability or a cgroup controller: a wrapper that edits the OCI bundle
before handing it to runc.

One wrapper serves every place an OCI runtime is called here — CRI-O and containerd on the local
cluster, CRI-O inside a kind node, and (in CI) dockerd itself — each with the edits its host needs:

- `hugetlb`: no hugetlb hierarchy is mounted (cgroup v1 here, never remounted), yet CRI-O decides
  hugetlb exists from /proc/cgroups and passes the kubelet's zero limits per page size, and runc then
  fails "cannot set hugetlb limit". Limits of an unmounted controller cannot be enforced anyway.
- `capabilities`: keep only capabilities in the wrapper's own bounding set. Where the host's bounding set
  lacks CAP_SYS_RESOURCE, `docker run --privileged` fails "unable to apply caps"; inside a kind node
  (docker 20.10 grants no CAP_PERFMON/BPF/CHECKPOINT_RESTORE) privileged Pods fail the same way.
- `oom_score_adj`: a kind node cannot raise its OOM score protection without CAP_SYS_RESOURCE
  ("failed to update /proc/self/oom_score_adj: Permission denied" for static Pods).

`runc create` reads `<bundle>/config.json`; `runc exec --process FILE` (kubectl/docker exec) reads
FILE; both are edited in place, then the real runc is exec'd with the same arguments.
"""

from __future__ import annotations

import sys
from pathlib import Path

RUNC = "/usr/sbin/runc"
# capability(7) numbers 0..40, in order.
CAPABILITIES = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
]


def render_runc_wrapper(
    runc: str = RUNC, *, hugetlb: bool = True, capabilities: bool = False, oom_score_adj: bool = False
) -> str:
    """A POSIX sh + jq wrapper around `runc` applying the chosen edits (see the module doc)."""
    bundle_edits = []
    process_edits = []
    if hugetlb:
        bundle_edits.append("del(.linux.resources.hugepageLimits?)")
    if oom_score_adj:
        bundle_edits.append("del(.process.oomScoreAdj?)")
        process_edits.append("del(.oomScoreAdj?)")
    if capabilities:
        bundle_edits.append("(.process.capabilities? // {}) |= with_entries(.value |= keep)")
        process_edits.append("(.capabilities? // {}) |= with_entries(.value |= keep)")
    caps = " ".join(CAPABILITIES)
    lines = [
        "#!/bin/sh",
        f"# runc for the ivc clusters (conformance.cluster.runtimes.oci): hugetlb={hugetlb}, "
        f"capabilities={capabilities}, oom_score_adj={oom_score_adj}",
        'bundle=""; process=""; prev=""; update=""',
        'for arg in "$@"; do',
        '    case "$prev" in --bundle|-b) bundle="$arg" ;; --process|-p) process="$arg" ;; esac',
        '    case "$arg" in --bundle=*) bundle="${arg#--bundle=}" ;; --process=*) process="${arg#--process=}" ;;',
        "    update) update=1 ;; esac",
        '    prev="$arg"',
        "done",
        # Capabilities outside our own bounding set, as a JSON list for jq.
        "missing=''",
        "bounding=$(sed -n 's/^CapBnd:[[:space:]]*//p' /proc/self/status)",
        "i=0",
        f"for cap in {caps}; do",
        '    [ $(( (0x$bounding >> i) & 1 )) -eq 1 ] || missing="$missing\\"CAP_$cap\\","',
        "    i=$((i + 1))",
        "done",
        'keep="def keep: if type == \\"array\\" then map(select(. as \\$c | [${missing%,}] | index(\\$c) | not))'
        ' else . end;"',
        "edit() {",
        '    [ -n "$2" ] && [ -f "$1" ] || return 0',
        '    jq -c "$keep $2" "$1" >"$1.ivc" && mv "$1.ivc" "$1" || exit 1',
        "}",
        f'edit "${{bundle:+$bundle/config.json}}" {_sh_quote(" | ".join(bundle_edits))}',
        f'edit "$process" {_sh_quote(" | ".join(process_edits))}',
    ]
    if hugetlb:
        lines += [
            'if [ -n "$update" ]; then',
            '    case " $* " in',
            '    *" --resources - "* | *" -r - "*)',
            f"        jq -c 'del(.hugepageLimits?)' | exec {runc} \"$@\" ;;",
            "    esac",
            "fi",
        ]
    lines.append(f'exec {runc} "$@"')
    return "\n".join(lines) + "\n"


def lacks_capability(name: str) -> bool:
    """Whether this process's capability bounding set lacks CAP_<name> (some VMs' bounding sets lack SYS_RESOURCE)."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return False
    bounding = int(status.split("CapBnd:", 1)[1].split()[0], 16)
    return not (bounding >> CAPABILITIES.index(name)) & 1


def _sh_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def main() -> None:
    """`main()` with argument `docker` (scripts/dockerd): the wrapper dockerd needs (no CAP_SYS_RESOURCE)."""
    kind = sys.argv[1] if len(sys.argv) > 1 else ""
    if kind != "docker":
        sys.exit("usage: main() with argument docker (prints dockerd's runc wrapper)")
    sys.stdout.write(render_runc_wrapper(hugetlb=False, capabilities=True))


if __name__ == "__main__":
    main()
