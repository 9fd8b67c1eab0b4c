"""Certificates and kubeconfigs of the local cluster, through kubeadm's file-writing phases.

Only kubeadm's file-writing phases run (`certs all`, `kubeconfig all`): they need no init
system, no images and no preflight, and they write into our state dir, never /etc/kubernetes.
"""

from __future__ import annotations

from pathlib import Path

from conformance.cluster.local import render
from conformance.cluster.local.render import Layout
from conformance.infra.errors import ClusterError
from conformance.infra.files import write_atomic, write_private
from conformance.infra.process import run

KUBECONFIGS = ("admin.conf", "super-admin.conf", "controller-manager.conf", "scheduler.conf", "kubelet.conf")


def kubeadm_phases(kubeadm: Path, layout: Layout, *, k8s_version: str, host_ip: str, runtime_endpoint: str) -> None:
    layout.pki.mkdir(parents=True, exist_ok=True)
    layout.kubeconfigs.mkdir(parents=True, exist_ok=True)
    kubeadm_yaml = write_atomic(
        layout.conf("kubeadm.yaml"),
        render.render_kubeadm_config(
            layout, k8s_version=k8s_version, host_ip=host_ip, runtime_endpoint=runtime_endpoint
        ),
    )
    run(
        [str(kubeadm), "init", "phase", "certs", "all", f"--config={kubeadm_yaml}"], what="kubeadm init phase certs all"
    )
    run(
        [
            str(kubeadm), "init", "phase", "kubeconfig", "all",
            f"--config={kubeadm_yaml}", f"--kubeconfig-dir={layout.kubeconfigs}",
        ],
        what="kubeadm init phase kubeconfig all",
    )  # fmt: skip
    missing = [name for name in KUBECONFIGS if not (layout.kubeconfigs / name).exists()]
    if missing:
        raise ClusterError(f"kubeadm init phase kubeconfig all did not write {missing[0]} into {layout.kubeconfigs}")
    # The suite's kubeconfig: super-admin (group system:masters) needs no kubeadm:cluster-admins binding.
    write_private(layout.kubeconfig, (layout.kubeconfigs / "super-admin.conf").read_text())
