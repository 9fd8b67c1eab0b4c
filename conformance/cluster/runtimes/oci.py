"""runc as these hosts need it: a wrapper that edits the OCI bundle before handing it to runc.

Shared by every runtime (CRI-O and containerd both call an OCI runtime with a bundle).
- No hugetlb hierarchy mounted (cgroup v1 here, never remounted): CRI-O decides hugetlb exists from
  /proc/cgroups and passes the kubelet's zero limits per page size, and runc then fails "cannot set
  hugetlb limit". Limits of an unmounted controller cannot be enforced anyway, so drop them.
"""

from __future__ import annotations

RUNC = "/usr/sbin/runc"


def render_runc_wrapper(runc: str = RUNC) -> str:
    return f"""#!/bin/sh
# runc for the ivc clusters: strips hugepageLimits (no hugetlb cgroup hierarchy on this host).
bundle=""
prev=""
update=""
for arg in "$@"; do
    case "$prev" in --bundle|-b) bundle="$arg" ;; esac
    case "$arg" in --bundle=*) bundle="${{arg#--bundle=}}" ;; update) update=1 ;; esac
    prev="$arg"
done
if [ -n "$bundle" ] && [ -f "$bundle/config.json" ]; then
    jq -c 'del(.linux.resources.hugepageLimits?)' "$bundle/config.json" >"$bundle/config.json.ivc" &&
        mv "$bundle/config.json.ivc" "$bundle/config.json" || exit 1
fi
if [ -n "$update" ]; then
    case " $* " in
    *" --resources - "* | *" -r - "*)
        jq -c 'del(.hugepageLimits?)' | exec {runc} "$@" ;;
    esac
fi
exec {runc} "$@"
"""
