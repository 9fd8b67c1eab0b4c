"""The files of the kind node image that are ours (pure): CNI wiring, RBAC, kubelet defaults, entrypoint edit.

kind's own entrypoint and systemd units are taken from the kind Go module at build time
(`node_image.py`); what is rendered here is what a CRI-O node without kindnet needs besides them.
"""

from __future__ import annotations

import re

from conformance.cluster import cni

CNI_SCRIPT = "/kind/bin/ivc-pod-network.sh"
CNI_CONFLIST = "/etc/cni/net.d/10-ivc-bridge.conflist"
CNI_BRIDGE = "ivc0"
NODE_KUBECONFIG = "/etc/kubernetes/kubelet.conf"
# kind waits for this line or "Reached target Multi-User System" in `docker logs`. On cgroup v1 the
# entrypoint prints it long before CRI-O (Type=notify) is up, and kubeadm then fails with "[ERROR CRI]
# … crio.sock: no such file"; reworded, kind waits for Multi-User System, which comes after crio.service.
EARLY_READY_LINE = "log_info 'detected cgroup v1'"
REWORDED_READY_LINE = "log_info 'cgroup v1 (ivc: kind now waits for systemd to reach the multi-user target)'"


def patch_entrypoint(text: str) -> str:
    if EARLY_READY_LINE not in text:
        raise ValueError(f"kind's entrypoint no longer contains {EARLY_READY_LINE!r}: review the node image recipe")
    return text.replace(EARLY_READY_LINE, REWORDED_READY_LINE)


def kubelet_defaults(runtime_unit: str) -> str:
    """/etc/default/kubelet: kind's points the runtime cgroup at containerd.service."""
    return f"KUBELET_EXTRA_ARGS=--runtime-cgroups=/system.slice/{runtime_unit}\n"


def default_cni_manifest() -> str:
    """What kind applies as its "CNI": only RBAC, so each node's network service may list the nodes
    (from 1.36 a kubelet's credentials read only its own Node)."""
    return """\
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: ivc:pod-network
rules:
- apiGroups: [""]
  resources: ["nodes"]
  verbs: ["get", "list", "watch"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: ivc:pod-network
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: ivc:pod-network
subjects:
- apiGroup: rbac.authorization.k8s.io
  kind: Group
  name: system:nodes
"""


def pod_network_script() -> str:
    """Pod networking across N nodes without kindnet: each node bridges its own podCIDR and routes the
    others' podCIDRs to their InternalIPs. Rewritten whenever the node list changes (every 2 s)."""
    template = cni.render_bridge_conflist(subnet="@SUBNET@", bridge=CNI_BRIDGE)
    template = re.sub(r"\s+", " ", template).strip()
    return f"""#!/bin/bash
# ivc: pod networking for a kind node without kindnet (conformance.cluster.kind.node_files).
set -u
kubectl="kubectl --kubeconfig {NODE_KUBECONFIG}"
fields='{{range .items[*]}}{{.metadata.name}} {{.spec.podCIDR}} '
fields+='{{.status.addresses[?(@.type=="InternalIP")].address}}{{"\\n"}}{{end}}'
me=$(hostname)
while true; do
    if [ -f {NODE_KUBECONFIG} ] && nodes=$($kubectl get nodes -o jsonpath="$fields" 2>/dev/null); then
        while read -r name cidr address; do
            [ -n "$cidr" ] || continue
            if [ "$name" = "$me" ]; then
                conf='{template}'
                conf=${{conf//@SUBNET@/$cidr}}
                if [ "$(cat {CNI_CONFLIST} 2>/dev/null)" != "$conf" ]; then
                    mkdir -p "$(dirname {CNI_CONFLIST})"
                    printf '%s' "$conf" >{CNI_CONFLIST}.tmp && mv {CNI_CONFLIST}.tmp {CNI_CONFLIST}
                fi
            elif [ -n "$address" ]; then
                ip route replace "$cidr" via "$address"
            fi
        done <<<"$nodes"
    fi
    sleep 2
done
"""


def pod_network_unit() -> str:
    return f"""[Unit]
Description=ivc pod network (bridge per node, routes to the other nodes' podCIDRs)
After=network.target

[Service]
ExecStart={CNI_SCRIPT}
Restart=always
RestartSec=2

[Install]
WantedBy=multi-user.target
"""
