"""Certificates and kubeconfigs (kubeadm phases) and the auth registry's TLS + htpasswd material.

Only kubeadm's file-writing phases run (`certs all`, `kubeconfig all`): they need no init
system, no images and no preflight, and they write into our state dir, never /etc/kubernetes.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path

from conformance.cluster.errors import ClusterError
from conformance.cluster.host import run, write_private
from conformance.cluster.local import config
from conformance.cluster.local.config import Layout

KUBECONFIGS = ("admin.conf", "super-admin.conf", "controller-manager.conf", "scheduler.conf", "kubelet.conf")


def kubeadm_phases(kubeadm: Path, layout: Layout, *, k8s_version: str, host_ip: str, runtime_endpoint: str) -> None:
    layout.pki.mkdir(parents=True, exist_ok=True)
    layout.kubeconfigs.mkdir(parents=True, exist_ok=True)
    kubeadm_yaml = layout.conf("kubeadm.yaml")
    kubeadm_yaml.parent.mkdir(parents=True, exist_ok=True)
    kubeadm_yaml.write_text(
        config.render_kubeadm_config(
            layout, k8s_version=k8s_version, host_ip=host_ip, runtime_endpoint=runtime_endpoint
        )
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


def registry_tls(layout: Layout) -> tuple[Path, Path]:
    """A CA of its own and a serving certificate for 127.0.0.1 (Go's TLS insists on the IP SAN)."""
    pki = layout.pki
    ca_key, ca_crt = pki / "registry-ca.key", layout.registry_ca
    key, crt = pki / "registry.key", pki / "registry.crt"
    run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "3650",
            "-keyout", str(ca_key), "-out", str(ca_crt), "-subj", "/CN=ivc local registry CA",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        ],
        what="creating the auth registry's CA",
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        csr, ext = Path(tmp) / "registry.csr", Path(tmp) / "ext.cnf"
        ext.write_text(
            "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
            "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n"
        )
        run(
            [
                "openssl",
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                str(key),
                "-out",
                str(csr),
                "-subj",
                "/CN=127.0.0.1",
            ],
            what="creating the auth registry's key",
        )
        run(
            [
                "openssl", "x509", "-req", "-sha256", "-days", "3650", "-in", str(csr),
                "-CA", str(ca_crt), "-CAkey", str(ca_key), "-set_serial", "0x" + secrets.token_hex(16),
                "-out", str(crt), "-extfile", str(ext),
            ],
            what="signing the auth registry's certificate",
        )  # fmt: skip
    for path in (ca_key, key):
        os.chmod(path, 0o600)
    return crt, key


def registry_htpasswd(layout: Layout) -> str:
    """A fresh random password per cluster, bcrypt-hashed (the registry accepts only bcrypt)."""
    password = secrets.token_urlsafe(18)
    write_private(layout.registry_password, password + "\n")
    # -i reads the password from stdin, so it never shows up in a process listing.
    run(
        ["htpasswd", "-B", "-i", "-c", str(layout.htpasswd), config.AUTH_REGISTRY_USER],
        what="htpasswd -B (apache2-utils)",
        input=password + "\n",
    )
    os.chmod(layout.htpasswd, 0o600)
    return password


def read_registry_password(layout: Layout) -> str | None:
    try:
        return layout.registry_password.read_text().strip() or None
    except OSError:
        return None
