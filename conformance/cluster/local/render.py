"""Pure rendering of every file and command line of the local cluster's Kubernetes side (inputs → text/argv).

The runtime's own files come from its declaration (`conformance.cluster.runtimes`). Nothing here
touches the host, so it is all unit-testable. Paths come from `Layout`, which puts every piece of
mutable state under one state directory so that `down` can remove it exactly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from conformance.cluster import gates
from conformance.cluster.registries import RegistryFiles

NODE_NAME = "ivc-node"
CLUSTER_NAME = "ivc-local"
SERVICE_SUBNET = "10.96.0.0/16"
POD_SUBNET = "10.85.0.0/16"  # CRI-O's contrib bridge subnet
CNI_BRIDGE = "cni0"
APISERVER_PORT = 6443
ETCD_CLIENT_PORT = 2379
ETCD_PEER_PORT = 2380
KUBELET_PORT = 10250
KUBELET_HEALTHZ_PORT = 10248
CONTROLLER_MANAGER_PORT = 10257
SCHEDULER_PORT = 10259
REGISTRY_ADDR = "127.0.0.1:5000"
AUTH_REGISTRY_ADDR = "127.0.0.1:5443"
# A plain-HTTP address the runtime also trusts, where nothing listens unless a test of the suite itself
# puts a registry proxy there that injects faults (tests/flaky_registry.py: the probe's retry path).
FAULT_INJECTION_ADDR = "127.0.0.1:5004"
PORTS = {
    "etcd": ETCD_CLIENT_PORT,
    "etcd-peer": ETCD_PEER_PORT,
    "kube-apiserver": APISERVER_PORT,
    "kubelet": KUBELET_PORT,
    "kubelet-healthz": KUBELET_HEALTHZ_PORT,
    "kube-controller-manager": CONTROLLER_MANAGER_PORT,
    "kube-scheduler": SCHEDULER_PORT,
    "registry": int(REGISTRY_ADDR.rsplit(":", 1)[1]),
    "auth-registry": int(AUTH_REGISTRY_ADDR.rsplit(":", 1)[1]),
}


@dataclass(frozen=True)
class Layout:
    """Where everything of one local cluster lives. Only `state` is configurable."""

    state: Path

    @property
    def cluster_json(self) -> Path:
        return self.state / "cluster.json"

    @property
    def kubeconfig(self) -> Path:
        return self.state / "kubeconfig"

    @property
    def logs(self) -> Path:
        return self.state / "logs"

    @property
    def pids(self) -> Path:
        return self.state / "pids"

    @property
    def pki(self) -> Path:
        return self.state / "pki"

    @property
    def kubeconfigs(self) -> Path:
        return self.state / "kubernetes"

    @property
    def config(self) -> Path:
        return self.state / "config"

    @property
    def etcd_data(self) -> Path:
        return self.state / "etcd"

    @property
    def kubelet_root(self) -> Path:
        return self.state / "kubelet"

    @property
    def pod_logs(self) -> Path:
        return self.state / "pod-logs"

    @property
    def run(self) -> Path:
        return self.state / "run"

    @property
    def cni_conf_dir(self) -> Path:
        return self.state / "cni" / "net.d"

    @property
    def cni_ipam_dir(self) -> Path:
        return self.state / "cni" / "networks"

    @property
    def registry_storage(self) -> Path:
        return self.state / "registry"

    @property
    def bin(self) -> Path:
        return self.state / "bin"

    @property
    def crictl_wrapper(self) -> Path:
        return self.bin / "crictl"

    @property
    def registry_files(self) -> RegistryFiles:
        return RegistryFiles(self.pki)

    def log(self, component: str) -> Path:
        return self.logs / f"{component}.log"

    def conf(self, name: str) -> Path:
        return self.config / name


# --- kubeadm (PKI and kubeconfigs only) -----------------------------------------------------


def render_kubeadm_config(layout: Layout, *, k8s_version: str, host_ip: str, runtime_endpoint: str) -> str:
    init = {
        "apiVersion": "kubeadm.k8s.io/v1beta4",
        "kind": "InitConfiguration",
        "localAPIEndpoint": {"advertiseAddress": host_ip, "bindPort": APISERVER_PORT},
        "nodeRegistration": {"name": NODE_NAME, "criSocket": runtime_endpoint},
    }
    cluster = {
        "apiVersion": "kubeadm.k8s.io/v1beta4",
        "kind": "ClusterConfiguration",
        # Explicit, or kubeadm looks up "stable-1" on the internet and waits for a timeout.
        "kubernetesVersion": k8s_version,
        "clusterName": CLUSTER_NAME,
        "certificatesDir": str(layout.pki),
        # Kubeconfigs then point at loopback, which keeps working if the host address changes.
        "controlPlaneEndpoint": f"127.0.0.1:{APISERVER_PORT}",
        "networking": {"serviceSubnet": SERVICE_SUBNET, "podSubnet": POD_SUBNET, "dnsDomain": "cluster.local"},
        "apiServer": {"certSANs": ["127.0.0.1", "localhost", host_ip, NODE_NAME]},
        "etcd": {"external": {"endpoints": [f"http://127.0.0.1:{ETCD_CLIENT_PORT}"]}},
    }
    return yaml.safe_dump(init, sort_keys=False) + "---\n" + yaml.safe_dump(cluster, sort_keys=False)


# --- crictl -----------------------------------------------------------------------------------


def render_crictl_yaml(runtime_endpoint: str) -> str:
    return yaml.safe_dump(
        {"runtime-endpoint": runtime_endpoint, "image-endpoint": runtime_endpoint, "timeout": 10, "debug": False},
        sort_keys=False,
    )


def render_crictl_wrapper(crictl: Path, config: Path) -> str:
    return f'#!/bin/sh\n# crictl for the ivc local cluster\nexec "{crictl}" --config "{config}" "$@"\n'


# --- kubelet ------------------------------------------------------------------------------


def render_kubelet_config(layout: Layout, *, runtime_endpoint: str, feature_gates: Mapping[str, bool]) -> str:
    config: dict[str, object] = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "cgroupDriver": "cgroupfs",
        "failCgroupV1": False,  # this host is cgroup v1; the kubelet refuses it by default from 1.35
        "failSwapOn": False,
        "containerRuntimeEndpoint": runtime_endpoint,
        "imageServiceEndpoint": runtime_endpoint,
        "address": "0.0.0.0",
        "port": KUBELET_PORT,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": KUBELET_HEALTHZ_PORT,
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(layout.pki / "ca.crt")},
        },
        "authorization": {"mode": "Webhook"},
        # Small CI disks would otherwise get a DiskPressure taint and image GC would race the tests.
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "1%",
            "imagefs.available": "1%",
            "nodefs.inodesFree": "1%",
        },
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "resolvConf": "/etc/resolv.conf",
        "podLogsDir": str(layout.pod_logs),
        "runtimeRequestTimeout": "2m",
        "rotateCertificates": False,
        "serializeImagePulls": False,
    }
    if feature_gates:
        config["featureGates"] = dict(sorted(feature_gates.items()))
    return yaml.safe_dump(config, sort_keys=False)


# --- command lines ------------------------------------------------------------------------


def etcd_args(etcd: Path, layout: Layout) -> tuple[str, ...]:
    client = f"http://127.0.0.1:{ETCD_CLIENT_PORT}"
    peer = f"http://127.0.0.1:{ETCD_PEER_PORT}"
    return (
        str(etcd),
        "--name=ivc",
        f"--data-dir={layout.etcd_data}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=ivc={peer}",
        "--listen-metrics-urls=",
        "--unsafe-no-fsync",  # a throwaway test cluster: durability is not worth the latency
    )


def apiserver_args(
    binary: Path,
    layout: Layout,
    *,
    host_ip: str,
    feature_gates: Mapping[str, bool],
    admission_plugins: Sequence[str],
    admission_config: Path | None = None,
) -> tuple[str, ...]:
    pki = layout.pki
    plugins = ["NodeRestriction", *[p for p in admission_plugins if p != "NodeRestriction"]]
    return (
        str(binary),
        f"--advertise-address={host_ip}",
        "--bind-address=0.0.0.0",
        f"--secure-port={APISERVER_PORT}",
        f"--etcd-servers=http://127.0.0.1:{ETCD_CLIENT_PORT}",
        f"--service-cluster-ip-range={SERVICE_SUBNET}",
        f"--client-ca-file={pki / 'ca.crt'}",
        f"--tls-cert-file={pki / 'apiserver.crt'}",
        f"--tls-private-key-file={pki / 'apiserver.key'}",
        f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
        f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
        "--kubelet-preferred-address-types=InternalIP,Hostname",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        f"--service-account-key-file={pki / 'sa.pub'}",
        f"--service-account-signing-key-file={pki / 'sa.key'}",
        f"--requestheader-client-ca-file={pki / 'front-proxy-ca.crt'}",
        f"--proxy-client-cert-file={pki / 'front-proxy-client.crt'}",
        f"--proxy-client-key-file={pki / 'front-proxy-client.key'}",
        "--requestheader-allowed-names=front-proxy-client",
        "--requestheader-username-headers=X-Remote-User",
        "--requestheader-group-headers=X-Remote-Group",
        "--requestheader-extra-headers-prefix=X-Remote-Extra-",
        "--authorization-mode=Node,RBAC",
        "--enable-admission-plugins=" + ",".join(plugins),
        *([f"--admission-control-config-file={admission_config}"] if admission_config else []),
        "--allow-privileged=true",
        "--profiling=false",
        *gates.flag(feature_gates),
    )


def _serving_on_localhost(kubeconfig: Path, port: int) -> tuple[str, ...]:
    """A control-plane component that talks to the apiserver with `kubeconfig` and serves /healthz on `port`."""
    return (
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        "--bind-address=127.0.0.1",
        f"--secure-port={port}",
    )


def controller_manager_args(binary: Path, layout: Layout, *, feature_gates: Mapping[str, bool]) -> tuple[str, ...]:
    pki = layout.pki
    return (
        str(binary),
        *_serving_on_localhost(layout.kubeconfigs / "controller-manager.conf", CONTROLLER_MANAGER_PORT),
        f"--client-ca-file={pki / 'ca.crt'}",
        f"--requestheader-client-ca-file={pki / 'front-proxy-ca.crt'}",
        # Without these two there is no token controller and no kube-root-ca.crt publisher, so
        # pods with the default projected SA token hang in ContainerCreating.
        f"--root-ca-file={pki / 'ca.crt'}",
        f"--service-account-private-key-file={pki / 'sa.key'}",
        f"--cluster-signing-cert-file={pki / 'ca.crt'}",
        f"--cluster-signing-key-file={pki / 'ca.key'}",
        "--use-service-account-credentials=true",
        "--controllers=*",
        "--leader-elect=false",
        f"--service-cluster-ip-range={SERVICE_SUBNET}",
        "--profiling=false",
        *gates.flag(feature_gates),
    )


def scheduler_args(binary: Path, layout: Layout, *, feature_gates: Mapping[str, bool]) -> tuple[str, ...]:
    return (
        str(binary),
        *_serving_on_localhost(layout.kubeconfigs / "scheduler.conf", SCHEDULER_PORT),
        "--leader-elect=false",
        "--profiling=false",
        *gates.flag(feature_gates),
    )


def kubelet_args(binary: Path, layout: Layout, *, host_ip: str) -> tuple[str, ...]:
    return (
        str(binary),
        f"--config={layout.conf('kubelet.yaml')}",
        f"--kubeconfig={layout.kubeconfigs / 'kubelet.conf'}",
        f"--root-dir={layout.kubelet_root}",
        f"--cert-dir={layout.kubelet_root / 'pki'}",
        f"--hostname-override={NODE_NAME}",
        f"--node-ip={host_ip}",
        "--v=2",
    )


def registry_args(binary: str, config: Path) -> tuple[str, ...]:
    return (binary, "serve", str(config))
