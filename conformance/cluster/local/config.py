"""Pure rendering of every file and command line the local cluster uses (inputs → text/argv).

Nothing here touches the host, so it is all unit-testable. Paths come from `Layout`, which puts
every piece of mutable state under one state directory so that `down` can remove it exactly.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

NODE_NAME = "ivc-node"
CLUSTER_NAME = "ivc-local"
SERVICE_SUBNET = "10.96.0.0/16"
POD_SUBNET = "10.85.0.0/16"  # CRI-O's contrib bridge subnet
CNI_NETWORK = "ivc"  # also names libcni's cache files (/var/lib/cni/results/ivc-*), so cleanup is exact
CNI_BRIDGE = "cni0"
CRIO_SOCKET = "/var/run/crio/crio.sock"
CRIO_ENDPOINT = f"unix://{CRIO_SOCKET}"
APISERVER_PORT = 6443
ETCD_CLIENT_PORT = 2379
ETCD_PEER_PORT = 2380
KUBELET_PORT = 10250
KUBELET_HEALTHZ_PORT = 10248
CONTROLLER_MANAGER_PORT = 10257
SCHEDULER_PORT = 10259
REGISTRY_ADDR = "127.0.0.1:5000"
AUTH_REGISTRY_ADDR = "127.0.0.1:5443"
AUTH_REGISTRY_USER = "ivc"
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
RUNC = "/usr/sbin/runc"
CONMON = "/usr/bin/conmon"


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
    def cni_conf_dir(self) -> Path:
        return self.state / "cni" / "net.d"

    @property
    def cni_ipam_dir(self) -> Path:
        return self.state / "cni" / "networks"

    @property
    def storage_root(self) -> Path:
        return self.state / "containers" / "storage"

    @property
    def storage_runroot(self) -> Path:
        return self.state / "containers" / "run"

    @property
    def namespaces_dir(self) -> Path:
        return self.state / "containers" / "ns"

    @property
    def crio_state(self) -> Path:
        return self.state / "crio"

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
    def registry_ca(self) -> Path:
        return self.pki / "registry-ca.crt"

    @property
    def registry_password(self) -> Path:
        return self.pki / "registry-password"

    @property
    def htpasswd(self) -> Path:
        return self.pki / "registry.htpasswd"

    def log(self, component: str) -> Path:
        return self.logs / f"{component}.log"

    def conf(self, name: str) -> Path:
        return self.config / name


# --- versions and feature gates -------------------------------------------------------------


def minor_version(version: str) -> tuple[int, int]:
    """`v1.36.3` → (1, 36)."""
    parts = version.lstrip("v").split(".")
    try:
        return int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        raise ValueError(f"not a Kubernetes version: {version!r}") from None


def parse_feature_gates(text: str) -> dict[str, bool]:
    """`A=true,B=false` → {"A": True, "B": False}; the CLI form of --feature-gates."""
    gates: dict[str, bool] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, value = item.partition("=")
        if not sep or value.strip().lower() not in ("true", "false") or not name.strip():
            raise ValueError(f"feature gate {item!r} is not of the form Name=true|false")
        gates[name.strip()] = value.strip().lower() == "true"
    return gates


def effective_feature_gates(k8s_version: str, passthrough: Mapping[str, bool]) -> dict[str, bool]:
    """ImageVolume must be switched on below 1.36 (off by default ≤1.34, harmless on 1.35) and
    never passed from 1.36 (GA, locked; ≈1.38 removes it). Explicit gates win, for negative checks."""
    gates: dict[str, bool] = {}
    if minor_version(k8s_version) < (1, 36):
        gates["ImageVolume"] = True
    gates.update(passthrough)
    return gates


def feature_gates_flag(gates: Mapping[str, bool]) -> list[str]:
    if not gates:
        return []
    return ["--feature-gates=" + ",".join(f"{k}={str(v).lower()}" for k, v in sorted(gates.items()))]


# --- kubeadm (PKI and kubeconfigs only) -----------------------------------------------------


def render_kubeadm_config(layout: Layout, *, k8s_version: str, host_ip: str) -> str:
    init = {
        "apiVersion": "kubeadm.k8s.io/v1beta4",
        "kind": "InitConfiguration",
        "localAPIEndpoint": {"advertiseAddress": host_ip, "bindPort": APISERVER_PORT},
        "nodeRegistration": {"name": NODE_NAME, "criSocket": CRIO_ENDPOINT},
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


# --- CRI-O, containers/image, CNI, crictl ---------------------------------------------------


def _toml(value: object) -> str:
    """Enough TOML for our scalars and string lists (JSON string escaping is valid TOML)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(str(value))


def _toml_table(name: str, values: Mapping[str, object]) -> str:
    return f"[{name}]\n" + "".join(f"{key} = {_toml(value)}\n" for key, value in values.items()) + "\n"


# bookworm's crun 1.8.1 only accepts runtime-spec 1.0.x ("container create failed: unknown version
# specified" on the newer specs CRI-O 1.36 writes), so runc 1.1.5 is the only handler configured.
DEFAULT_RUNTIME = "runc"


def render_crio_conf(
    layout: Layout,
    *,
    pause_image: str,
    pinns_path: str,
    cni_plugin_dirs: Sequence[str],
    default_runtime: str = DEFAULT_RUNTIME,
    runc_path: str = RUNC,
) -> str:
    crio = layout.crio_state
    return (
        _toml_table(
            "crio",
            {
                "root": str(layout.storage_root),
                "runroot": str(layout.storage_runroot),
                "storage_driver": "overlay",
                "log_dir": str(layout.pod_logs / "crio"),
                "version_file": str(crio / "version"),
                "version_file_persist": str(crio / "version-persist"),
                "clean_shutdown_file": str(crio / "clean.shutdown"),
            },
        )
        + _toml_table("crio.api", {"listen": CRIO_SOCKET})
        + _toml_table(
            "crio.runtime",
            {
                "cgroup_manager": "cgroupfs",  # no systemd here; the systemd manager would try D-Bus
                "default_runtime": default_runtime,
                "pinns_path": pinns_path,
                "namespaces_dir": str(layout.namespaces_dir),
                "drop_infra_ctr": True,  # the pause image is still needed to create the sandbox
            },
        )
        + _toml_table(
            "crio.runtime.runtimes.runc",
            {
                "runtime_path": runc_path,
                "runtime_type": "oci",
                "runtime_root": "/run/runc",
                "monitor_path": CONMON,
                "monitor_cgroup": "pod",
            },
        )
        + _toml_table(
            "crio.image",
            {
                "pause_image": pause_image,
                "pause_command": "/pause",
                "signature_policy": str(layout.conf("policy.json")),
                "oci_artifact_mount_support": True,
            },
        )
        + _toml_table(
            "crio.network",
            {
                "cni_default_network": CNI_NETWORK,
                "network_dir": str(layout.cni_conf_dir),
                "plugin_dirs": list(cni_plugin_dirs),
            },
        )
        # NRI would leave a socket under /var/run/nri; nothing here uses it.
        + _toml_table("crio.nri", {"enable_nri": False})
    )


def render_runc_wrapper(runc: str = RUNC) -> str:
    """runc that drops hugetlb limits when this host has no hugetlb hierarchy mounted.

    CRI-O decides hugetlb exists from /proc/cgroups (listed, though in no hierarchy here) and
    passes on the kubelet's zero limits per page size; runc then fails "cannot set hugetlb limit:
    container could not join or create cgroup". Limits of an unmounted controller cannot be
    enforced anyway, and the cgroup hierarchy must not be remounted, so drop them.
    """
    return f"""#!/bin/sh
# runc for the ivc local cluster: strips hugepageLimits (no hugetlb cgroup hierarchy on this host).
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


def render_storage_conf(layout: Layout) -> str:
    """containers/storage settings of our own, so /etc/containers/storage.conf is never consulted."""
    return _toml_table(
        "storage", {"driver": "overlay", "graphroot": str(layout.storage_root), "runroot": str(layout.storage_runroot)}
    )


def render_registries_conf(insecure: Sequence[str] = (REGISTRY_ADDR,)) -> str:
    # containers/image does not trust loopback by itself: without insecure=true it tries TLS.
    out = "unqualified-search-registries = []\n\n"
    for location in insecure:
        out += f"[[registry]]\nlocation = {_toml(location)}\ninsecure = true\n\n"
    return out


def render_policy_json() -> str:
    return json.dumps({"default": [{"type": "insecureAcceptAnything"}]}, indent=2) + "\n"


def render_cni_conflist(layout: Layout) -> str:
    conflist = {
        "cniVersion": "1.0.0",
        "name": CNI_NETWORK,
        "plugins": [
            {
                "type": "bridge",
                "bridge": CNI_BRIDGE,
                "isGateway": True,
                "ipMasq": True,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "dataDir": str(layout.cni_ipam_dir),  # default /var/lib/cni/networks; ours is removed by down
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "ranges": [[{"subnet": POD_SUBNET}]],
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }
    return json.dumps(conflist, indent=2) + "\n"


def render_crictl_yaml() -> str:
    return yaml.safe_dump(
        {"runtime-endpoint": CRIO_ENDPOINT, "image-endpoint": CRIO_ENDPOINT, "timeout": 10, "debug": False},
        sort_keys=False,
    )


def render_crictl_wrapper(crictl: Path, config: Path) -> str:
    return f'#!/bin/sh\n# crictl for the ivc local cluster\nexec "{crictl}" --config "{config}" "$@"\n'


# --- kubelet ------------------------------------------------------------------------------


def render_kubelet_config(layout: Layout, *, k8s_version: str, feature_gates: Mapping[str, bool]) -> str:
    config: dict[str, object] = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "cgroupDriver": "cgroupfs",
        "failCgroupV1": False,  # this host is cgroup v1; the kubelet refuses it by default from 1.35
        "failSwapOn": False,
        "containerRuntimeEndpoint": CRIO_ENDPOINT,
        "imageServiceEndpoint": CRIO_ENDPOINT,
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
    gates = effective_feature_gates(k8s_version, feature_gates)
    if gates:
        config["featureGates"] = dict(sorted(gates.items()))
    return yaml.safe_dump(config, sort_keys=False)


# --- registries ---------------------------------------------------------------------------


def render_registry_config(
    *, addr: str, root: Path, secret: str, tls: tuple[Path, Path] | None = None, htpasswd: Path | None = None
) -> str:
    config: dict[str, object] = {
        "version": 0.1,
        "log": {"level": "info", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(root)}, "delete": {"enabled": True}},
        "http": {"addr": addr, "secret": secret, "headers": {"X-Content-Type-Options": ["nosniff"]}},
    }
    if tls:
        config["http"]["tls"] = {"certificate": str(tls[0]), "key": str(tls[1])}  # type: ignore[index]
    if htpasswd:
        config["auth"] = {"htpasswd": {"realm": "ivc-registry", "path": str(htpasswd)}}
    return yaml.safe_dump(config, sort_keys=False)


# --- command lines ------------------------------------------------------------------------


def etcd_args(etcd: Path, layout: Layout) -> list[str]:
    client = f"http://127.0.0.1:{ETCD_CLIENT_PORT}"
    peer = f"http://127.0.0.1:{ETCD_PEER_PORT}"
    return [
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
    ]


def apiserver_args(
    binary: Path,
    layout: Layout,
    *,
    host_ip: str,
    feature_gates: Mapping[str, bool],
    admission_plugins: Sequence[str],
    k8s_version: str,
) -> list[str]:
    pki = layout.pki
    plugins = ["NodeRestriction", *[p for p in admission_plugins if p != "NodeRestriction"]]
    return [
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
        "--allow-privileged=true",
        "--profiling=false",
        *feature_gates_flag(effective_feature_gates(k8s_version, feature_gates)),
    ]


def controller_manager_args(
    binary: Path, layout: Layout, *, feature_gates: Mapping[str, bool], k8s_version: str
) -> list[str]:
    pki, conf = layout.pki, layout.kubeconfigs / "controller-manager.conf"
    return [
        str(binary),
        f"--kubeconfig={conf}",
        f"--authentication-kubeconfig={conf}",
        f"--authorization-kubeconfig={conf}",
        "--bind-address=127.0.0.1",
        f"--secure-port={CONTROLLER_MANAGER_PORT}",
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
        *feature_gates_flag(effective_feature_gates(k8s_version, feature_gates)),
    ]


def scheduler_args(binary: Path, layout: Layout, *, feature_gates: Mapping[str, bool], k8s_version: str) -> list[str]:
    conf = layout.kubeconfigs / "scheduler.conf"
    return [
        str(binary),
        f"--kubeconfig={conf}",
        f"--authentication-kubeconfig={conf}",
        f"--authorization-kubeconfig={conf}",
        "--bind-address=127.0.0.1",
        f"--secure-port={SCHEDULER_PORT}",
        "--leader-elect=false",
        "--profiling=false",
        *feature_gates_flag(effective_feature_gates(k8s_version, feature_gates)),
    ]


def crio_args(binary: Path, layout: Layout) -> list[str]:
    return [
        str(binary),
        f"--config={layout.conf('crio.conf')}",
        f"--config-dir={layout.conf('crio.conf.d')}",  # empty: never pick up /etc/crio/crio.conf.d
        # The host's global registries.conf (and its drop-ins) stay untouched and unread.
        f"--registries-conf={layout.conf('registries.conf')}",
        f"--registries-conf-dir={layout.conf('registries.conf.d')}",
        "--log-level=info",
    ]


def crio_env(layout: Layout, path: str) -> dict[str, str]:
    # conmon/runc/iptables/jq are found on PATH; storage.conf of our own keeps /etc out of it.
    return {"PATH": path, "CONTAINERS_STORAGE_CONF": str(layout.conf("storage.conf"))}


def kubelet_args(binary: Path, layout: Layout, *, host_ip: str) -> list[str]:
    return [
        str(binary),
        f"--config={layout.conf('kubelet.yaml')}",
        f"--kubeconfig={layout.kubeconfigs / 'kubelet.conf'}",
        f"--root-dir={layout.kubelet_root}",
        f"--cert-dir={layout.kubelet_root / 'pki'}",
        f"--hostname-override={NODE_NAME}",
        f"--node-ip={host_ip}",
        "--v=2",
    ]


def registry_args(binary: str, config: Path) -> list[str]:
    return [binary, "serve", str(config)]
