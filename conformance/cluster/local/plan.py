"""`LocalPlan`: what one local cluster is, derived from the options once.

Versions and gates (validated before anything slow happens), the runtime's node setup, where every
file lives, and the daemons in start order: the one list that drives start and readiness (in
order), health and status, and `down` (reverse order). Building binaries and writing the
configuration files are the plan's too, so the provider is left with the contract and its state.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conformance.cluster import cni, gates, pins, registries
from conformance.cluster.admission import render_admission_configuration
from conformance.cluster.components import gomodules
from conformance.cluster.contract import RegistryEndpoint
from conformance.cluster.daemons import Daemon
from conformance.cluster.local import bootstrap, hostprep, render
from conformance.cluster.local.render import Layout
from conformance.cluster.options import ClusterOptions
from conformance.cluster.probes import expect_status
from conformance.cluster.runtimes import Runtime, select
from conformance.cluster.runtimes.base import NodeSetup, RegistryRoute, cri_refusal
from conformance.cluster.runtimes.oci import lacks_capability, render_runc_wrapper
from conformance.cluster.state import provider_dir
from conformance.infra import debian
from conformance.infra.errors import ClusterError
from conformance.infra.files import write_atomic, write_executable
from conformance.infra.process import run
from conformance.infra.progress import progress
from conformance.infra.versions import Version
from conformance.oci.base_images import PAUSE_REPOSITORY, PAUSE_TAG, push_base_images
from conformance.oci.registry import RegistryClient

PROVIDER_NAME = "local"
REGISTRY_BINARY = "/usr/bin/docker-registry"
# What the cluster needs on the host besides the runtime's own packages.
PACKAGES = (
    "containernetworking-plugins",
    "docker-registry",
    "iptables",
    "apache2-utils",  # htpasswd -B for the auth registry
    "openssl",  # the auth registry's CA and serving certificate
    "iproute2",  # ss and ip, for the port check and network teardown
    "util-linux",  # mount/umount
    # cgo and libseccomp headers for CRI-O, a static libc for pinns and the pause binary.
    "gcc",
    "libc6-dev",
    "libseccomp-dev",
    "pkg-config",
)
ETCD_PACKAGE, ETCD_SUITE = "etcd-server", "sid"  # bookworm's 3.4 is EOL; sid's 3.5 runs on bookworm
CNI_CONFLIST = "10-ivc-bridge.conflist"
USER_RUNTIME_CNI_DIR = Path("/var/lib/ivc/cni/net.d")  # what a user's runtime is configured to read
# Namespaces this cluster's Pods live in (the suite's, the smoke Pod's): all a user's runtime gets cleaned of.
OWN_NAMESPACE_PREFIXES = ("ivc-", "default", "kube-system")


class PlaceholderBinaries(dict[str, Path]):
    """Binary paths for a plan that is only stopped or inspected, never started."""

    def __missing__(self, key: str) -> Path:
        return Path(f"/nonexistent/{key}")


@dataclass(frozen=True)
class Binaries:
    kubernetes: Mapping[str, Path]
    runtime: Mapping[str, Path]
    crictl: Path
    etcd: Path


UNBUILT = Binaries(PlaceholderBinaries(), PlaceholderBinaries(), Path("/nonexistent/crictl"), Path("/nonexistent/etcd"))


class LocalPlan:
    def __init__(self, options: ClusterOptions) -> None:
        self.options = options
        self.k8s_version = options.k8s_version or pins.KUBERNETES
        self.runtime: Runtime = select(options.runtime, options.runtime_endpoint)
        self.external_runtime = bool(options.runtime_endpoint)
        self.runtime_version = options.runtime_version or self.runtime.default_version
        # Validated before anything slow happens: a locked gate fails here, not after a build.
        self.gates = gates.gates_for(self.k8s_version, options.feature_gates)
        # A kubelet may be older than the control plane (skew policy: up to three minors), never newer.
        self.kubelet_version = options.kubelet_version or self.k8s_version
        kubelet, control_plane = Version.parse(self.kubelet_version), Version.parse(self.k8s_version)
        if kubelet > control_plane or control_plane.minor - kubelet.minor > 3:
            raise ClusterError(
                f"--kubelet-version {self.kubelet_version} with a {self.k8s_version} control plane is outside the "
                "version skew policy (the kubelet may be up to three minors older, never newer)"
            )
        self.kubelet_gates = gates.gates_for(self.kubelet_version, options.feature_gates)
        self.admission_plugins = list(options.admission_plugins)
        self.cache_dir = options.cache_dir
        self.layout = Layout(options.state_dir or provider_dir(PROVIDER_NAME))

    # --- what the cluster is ---------------------------------------------------------------

    def settings(self) -> dict[str, Any]:
        """Every setting that makes two local clusters different; recorded in the state."""
        return {
            "k8s_version": self.k8s_version,
            "kubelet_version": self.kubelet_version,
            "runtime": self.runtime.name,
            "runtime_version": self.runtime_version,
            "runtime_endpoint": self.options.runtime_endpoint,
            "feature_gates": dict(sorted(self.options.feature_gates.items())),
            "admission_plugins": self.admission_plugins,
            "pod_security": self.options.pod_security,
        }

    def asked(self) -> dict[str, Any]:
        """The settings the user named (flags given): a running cluster must match them to be used."""
        given = self.options
        named = {
            "k8s_version": given.k8s_version,
            "kubelet_version": given.kubelet_version,
            "runtime": given.runtime or given.runtime_version,
            "runtime_version": given.runtime_version,
            "runtime_endpoint": given.runtime_endpoint,
            "feature_gates": given.feature_gates,
            "admission_plugins": given.admission_plugins,
            "pod_security": given.pod_security,
        }
        settings = self.settings()
        return {key: settings[key] for key, value in named.items() if value}

    @property
    def cni_conf_dir(self) -> Path:
        """Ours under the state dir; for a user's runtime one that outlives `down`, because a runtime
        watching its CNI directory stops when that directory is removed (containerd: "cni conf dir is
        removed, stop watching")."""
        return USER_RUNTIME_CNI_DIR if self.external_runtime else self.layout.cni_conf_dir

    def node_setup(self) -> NodeSetup:
        layout = self.layout
        return NodeSetup(
            state_dir=layout.state,
            run_dir=layout.run,
            config_dir=layout.config / self.runtime.name,
            log_dir=layout.pod_logs,
            cgroup_manager="cgroupfs",  # no systemd on the host; the systemd manager would try D-Bus
            pause_image=f"{render.REGISTRY_ADDR}/{PAUSE_REPOSITORY}:{PAUSE_TAG}",
            cni_conf_dir=self.cni_conf_dir,
            cni_plugin_dirs=(cni.PLUGIN_DIR,),
            oci_runtime=layout.bin / "runc",
            registries=(
                RegistryRoute(render.REGISTRY_ADDR, render.REGISTRY_ADDR, insecure=True),
                RegistryRoute(render.FAULT_INJECTION_ADDR, render.FAULT_INJECTION_ADDR, insecure=True),
                RegistryRoute(
                    render.AUTH_REGISTRY_ADDR,
                    render.AUTH_REGISTRY_ADDR,
                    insecure=False,
                    ca_file=layout.registry_files.ca,
                ),
            ),
        )

    def host_paths(self) -> tuple[str, ...]:
        """What the runtime may create outside our state directory: its declared paths, and the directories of
        the registry files it reads from fixed places (CRI-O: /etc/containers/certs.d/<registry>)."""
        setup = self.node_setup()
        cas = (self.runtime.ca_dir(setup, route.location) for route in setup.registries if route.ca_file)
        outside = (str(path) for path in cas if not path.is_relative_to(self.layout.state))
        return tuple(dict.fromkeys((*self.runtime.host_paths, *outside)))

    @property
    def endpoint(self) -> str:
        return f"unix://{self.runtime.socket(self.node_setup())}"

    @property
    def runtime_daemons(self) -> list[str]:
        """The runtime's daemons, whose logs diagnostics show (none for a user's runtime)."""
        return [daemon.name for daemon in self.runtime.daemons(self.node_setup(), PlaceholderBinaries(), None)]

    @property
    def components(self) -> dict[str, list[str]]:
        """What `restart` restarts: the kubelet, or the runtime's own daemons (none for a user's runtime)."""
        return {"kubelet": ["kubelet"], "runtime": self.runtime_daemons}

    def restartable(self, component: str) -> bool:
        return bool(self.components.get(component))

    def daemons(self, binaries: Binaries = UNBUILT, host_ip: str = "") -> list[Daemon]:
        """Every daemon of the cluster, in start order; `down` stops them in reverse (with `UNBUILT`)."""
        layout = self.layout
        setup = self.node_setup()

        def healthz(port: int) -> Any:
            return lambda: expect_status(f"https://127.0.0.1:{port}/healthz", verify=False)

        def remove_sandboxes() -> None:
            # Through the runtime, so CNI releases addresses and tears down veths and iptables rules.
            if layout.crictl_wrapper.exists() and self.runtime.socket(setup).is_socket():
                try:
                    self.remove_sandboxes()
                except ClusterError as exc:
                    progress(f"{exc}; continuing")

        k8s = binaries.kubernetes
        return [
            Daemon(
                "registry",
                render.registry_args(REGISTRY_BINARY, layout.conf("registry.yml")),
                ready=lambda: expect_status(f"http://{render.REGISTRY_ADDR}/v2/"),
                timeout=30,
                after_ready=self.push_pause_image,
            ),
            Daemon(
                "auth-registry",
                render.registry_args(REGISTRY_BINARY, layout.conf("auth-registry.yml")),
                ready=lambda: expect_status(
                    f"https://{render.AUTH_REGISTRY_ADDR}/v2/", (401,), cafile=layout.registry_files.ca
                ),
                timeout=30,
            ),
            Daemon(
                "etcd",
                render.etcd_args(binaries.etcd, layout),
                ready=lambda: expect_status(f"http://127.0.0.1:{render.ETCD_CLIENT_PORT}/health"),
                timeout=60,
            ),
            Daemon(
                "kube-apiserver",
                render.apiserver_args(
                    k8s["kube-apiserver"],
                    layout,
                    host_ip=host_ip,
                    feature_gates=self.gates,
                    admission_plugins=self.admission_plugins,
                    admission_config=layout.conf("admission.yaml") if self.options.pod_security else None,
                ),
                ready=lambda: expect_status(
                    f"https://127.0.0.1:{render.APISERVER_PORT}/readyz", cafile=layout.pki / "ca.crt"
                ),
                timeout=180,
                after_ready=lambda: bootstrap.create_rbac(layout.kubeconfig),
            ),
            Daemon(
                "kube-controller-manager",
                render.controller_manager_args(k8s["kube-controller-manager"], layout, feature_gates=self.gates),
                ready=healthz(render.CONTROLLER_MANAGER_PORT),
                timeout=90,
            ),
            Daemon(
                "kube-scheduler",
                render.scheduler_args(k8s["kube-scheduler"], layout, feature_gates=self.gates),
                ready=healthz(render.SCHEDULER_PORT),
                timeout=90,
            ),
            *self.runtime.daemons(setup, binaries.runtime, binaries.crictl),
            Daemon(
                "kubelet",
                render.kubelet_args(k8s["kubelet"], layout, host_ip=host_ip),
                ready=lambda: bootstrap.node_ready(layout.kubeconfig),
                timeout=180,
                after_stop=remove_sandboxes,
            ),
        ]

    # --- what bring-up does with it ----------------------------------------------------------

    def build(self) -> Binaries:
        """Every binary the plan starts, built or taken from the cache; the host packages it needs."""
        debian.ensure_packages((*PACKAGES, *self.runtime.packages))
        _stop_packaged_registry()
        built = gomodules.build(gomodules.KUBERNETES, self.k8s_version, self.cache_dir)
        kubernetes = {name: built.binary(name) for name in gomodules.KUBERNETES.binaries}
        if self.kubelet_version != self.k8s_version:
            older = gomodules.build(gomodules.KUBERNETES, self.kubelet_version, self.cache_dir)
            kubernetes["kubelet"] = older.binary("kubelet")
        etcd = debian.unpacked(ETCD_PACKAGE, ETCD_SUITE, self.cache_dir) / "usr" / "bin" / "etcd"
        debian.runs_here(etcd)
        return Binaries(
            kubernetes=kubernetes,
            runtime=self.runtime.binaries(self.runtime_version, self.cache_dir),
            crictl=gomodules.build(gomodules.CRICTL, pins.CRICTL, self.cache_dir).binary("crictl"),
            etcd=etcd,
        )

    def check_external_runtime(self, crictl: Path) -> None:
        """A runtime the user started (--runtime-endpoint) must answer CRI before anything else starts."""
        if (refused := cri_refusal(crictl, self.runtime.socket(self.node_setup()))) is not None:
            raise ClusterError(
                f"the runtime at {self.endpoint} does not answer CRI ({refused}): "
                "start it first; the suite never starts a runtime given with --runtime-endpoint"
            )

    def write_configs(self, binaries: Binaries) -> None:
        layout = self.layout
        setup = self.node_setup()
        runc = self.runtime.oci_runtime(binaries.runtime)
        # Without CAP_SYS_RESOURCE runc cannot lower a sandbox's oom_score_adj (containerd asks for -998).
        no_resource = lacks_capability("SYS_RESOURCE")
        wrapper = render_runc_wrapper(
            runc,
            hugetlb=not hostprep.cgroup_controller_mounted("hugetlb"),
            capabilities=no_resource,
            oom_score_adj=no_resource,
        )
        write_executable(setup.oci_runtime, wrapper)
        write_atomic(
            self.cni_conf_dir / CNI_CONFLIST,
            cni.render_bridge_conflist(
                subnet=render.POD_SUBNET, bridge=render.CNI_BRIDGE, ipam_dir=layout.cni_ipam_dir
            ),
        )
        write_atomic(layout.conf("crictl.yaml"), render.render_crictl_yaml(self.endpoint))
        if self.options.pod_security:
            write_atomic(layout.conf("admission.yaml"), render_admission_configuration(self.options.pod_security))
        write_executable(
            layout.crictl_wrapper, render.render_crictl_wrapper(binaries.crictl, layout.conf("crictl.yaml"))
        )
        write_atomic(
            layout.conf("kubelet.yaml"),
            render.render_kubelet_config(layout, runtime_endpoint=self.endpoint, feature_gates=self.kubelet_gates),
        )
        # Registries: the auth one with its own CA, serving certificate and a fresh htpasswd.
        files = layout.registry_files
        registries.create_tls(files, ["127.0.0.1", "localhost"])
        registries.create_htpasswd(files)
        registries.write_config(
            layout.conf("registry.yml"), addr=render.REGISTRY_ADDR, root=layout.registry_storage / "plain"
        )
        registries.write_config(
            layout.conf("auth-registry.yml"),
            addr=render.AUTH_REGISTRY_ADDR,
            root=layout.registry_storage / "auth",
            tls=(files.certificate, files.key),
            htpasswd=files.htpasswd,
        )
        for path, text in self.runtime.config_files(setup, binaries.runtime, self.runtime_version).items():
            write_atomic(path, text)

    def push_pause_image(self) -> None:
        progress(f"pushing the pause image to {render.REGISTRY_ADDR}")
        client = RegistryClient(RegistryEndpoint(push=render.REGISTRY_ADDR, pull=render.REGISTRY_ADDR))
        client.ping()
        push_base_images(client, which=("pause",), cache_dir=self.cache_dir)

    def remove_sandboxes(self) -> None:
        crictl = str(self.layout.crictl_wrapper)
        if not self.external_runtime:
            progress("removing all pod sandboxes (crictl rmp -fa)")
            run([crictl, "rmp", "-fa"], what="crictl rmp -fa", timeout=180)
            return
        # A runtime of the user's may hold Pods of others: remove only the namespaces this cluster used.
        listed = json.loads(run([crictl, "pods", "-o", "json"], what="crictl pods", timeout=60).stdout)
        ours = [
            pod["id"]
            for pod in listed.get("items", [])
            if pod.get("metadata", {}).get("namespace", "").startswith(OWN_NAMESPACE_PREFIXES)
        ]
        progress(f"removing the {len(ours)} pod sandboxes of this cluster from the user's runtime")
        if ours:
            run([crictl, "rmp", "-f", *ours], what="crictl rmp -f", timeout=180)


def _stop_packaged_registry() -> None:
    """Debian's docker-registry package may start a registry on :5000 (all interfaces); ours must own that port."""
    if not Path("/etc/init.d/docker-registry").exists():
        return
    if Path("/var/run/docker-registry.pid").exists():
        run(["/etc/init.d/docker-registry", "stop"], what="stop Debian's docker-registry service", check=False)
    run(["update-rc.d", "docker-registry", "disable"], what="disable Debian's docker-registry service", check=False)
