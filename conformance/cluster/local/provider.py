"""`LocalProvider`: a real single-node cluster as plain host processes on this machine.

The bring-up is data: `_plan` declares every daemon once (registries, etcd, control plane, the
runtime's own daemons, kubelet), and that list drives start and readiness (in order), health and
status, and `down` (reverse order). `<state>/cluster.json` is rewritten after every daemon starts,
so `down` — also the automatic one after a failed or interrupted `up` — knows exactly what to stop.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import signal
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from conformance.cluster import cni, gates, pins, registries
from conformance.cluster.admission import render_admission_configuration
from conformance.cluster.components import gomodules
from conformance.cluster.contract import ClusterHandle, NodeAccess, RegistryEndpoint
from conformance.cluster.daemons import (
    Daemon,
    ProcessRecord,
    alive,
    exited,
    owner_alive,
    start,
    start_ticks,
    stop,
    this_process,
    wait_ready,
)
from conformance.cluster.local import bootstrap, hostprep, pki, render
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
from conformance.infra.kube import Kube
from conformance.infra.process import run
from conformance.infra.progress import progress
from conformance.infra.versions import Version
from conformance.oci.base_images import PAUSE_REPOSITORY, PAUSE_TAG, push_base_images
from conformance.oci.registry import RegistryClient

STATE_FORMAT = 2
DAEMON_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
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
SMOKE_POD_TIMEOUT = 180.0
CNI_CONFLIST = "10-ivc-bridge.conflist"
USER_RUNTIME_CNI_DIR = Path("/var/lib/ivc/cni/net.d")  # what a user's runtime is configured to read
# Namespaces this cluster's Pods live in (the suite's, the smoke Pod's): all a user's runtime gets cleaned of.
OWN_NAMESPACE_PREFIXES = ("ivc-", "default", "kube-system")
SERVICE_ACCOUNT_TIMEOUT = 90.0


class _Interrupted(KeyboardInterrupt):
    """SIGTERM during `up`: handled like Ctrl-C (tear down, then re-raise)."""


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise _Interrupted(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class PlaceholderBinaries(dict[str, Path]):
    """Binary paths for a plan that is only stopped or inspected, never started."""

    def __missing__(self, key: str) -> Path:
        return Path(f"/nonexistent/{key}")


@dataclass(frozen=True)
class _Binaries:
    kubernetes: Mapping[str, Path]
    runtime: Mapping[str, Path]
    crictl: Path
    etcd: Path


def _cgroup_version() -> str:
    return "cgroup v2" if Path("/sys/fs/cgroup/cgroup.controllers").exists() else "cgroup v1"


class LocalProvider:
    name: ClassVar[str] = "local"

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
        self.layout = Layout(options.state_dir or provider_dir(self.name))

    # --- the contract -------------------------------------------------------------------

    def up(self, *, keep: bool = True) -> ClusterHandle:
        """Start the cluster (or reuse a healthy one with the same settings). `keep`: the caller leaves it
        running (`up`, --keep-cluster); a run that was to remove it and was killed is recognised by that."""
        hostprep.require_root()
        state = self._load_state()
        if state is not None:
            problem = self._health_problem(state)
            if problem is None:
                self._check_same_settings(state)
                progress(f"local cluster already running (since {state['started_at']}), reusing it")
                return self._handle(state, created=False)
            progress(f"found a local cluster that is not healthy ({problem}); removing it first")
            self.down()
        elif self.layout.state.exists() and any(self.layout.state.iterdir()):
            progress(f"found leftovers of a local cluster in {self.layout.state}; removing them first")
            self.down()
        started = time.monotonic()
        with _sigterm_interrupts():
            try:
                state = self._bring_up(keep)
            except BaseException as exc:
                reason = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
                leftover = self._load_state()
                if leftover is None and not self.layout.cluster_json.exists():
                    raise  # failed before anything was started
                progress(f"local cluster bring-up {reason}; tearing down what was started")
                kept = self._keep_logs()
                if kept is not None:
                    progress(f"the daemons' logs of the failed bring-up are kept in {kept}")
                try:
                    self._teardown(leftover)
                except Exception as cleanup_error:  # noqa: BLE001 - the original error matters more
                    progress(f"teardown after failed bring-up was incomplete: {cleanup_error}")
                raise
        progress(f"local cluster is up in {time.monotonic() - started:.0f}s (kubeconfig {self.layout.kubeconfig})")
        return self._handle(state, created=True)

    def running_handle(self) -> ClusterHandle | None:
        """The handle of a healthy running local cluster, else None.

        A cluster that differs in a setting the user named (--k8s-version, --runtime, …) is refused in one
        line, never used silently; one that a killed run left (it was to remove it) is removed instead, and
        the caller brings up the cluster asked for. A matching one a killed run left is adopted: this run
        removes it at the end. Otherwise the running cluster is reused as it is (the suite discovers it).
        """
        state = self._load_state()
        if state is None or os.geteuid() != 0 or self._health_problem(state) is not None:
            return None
        asked = self._asked()
        found = {key: state.get(key) for key in asked}
        left_by_killed_run = not state.get("keep", True) and not owner_alive(state.get("owner"))
        if found != asked:
            if left_by_killed_run:
                progress(f"replacing the local cluster a killed run left ({found}) with the one asked for ({asked})")
                self.down()
                return None
            raise ClusterError(
                f"a local cluster runs with {found}, this run asks for {asked}: remove it with "
                "`python -m conformance.cluster down --provider local`, or drop the options to test it as it is"
            )
        return self._handle(state, created=left_by_killed_run)

    def down(self) -> None:
        hostprep.require_root()
        state = self._load_state()
        if state is None and not self.layout.state.exists():
            progress("no local cluster is running")
            return
        started = time.monotonic()
        self._teardown(state)
        progress(f"local cluster removed in {time.monotonic() - started:.0f}s")

    def status(self) -> str:
        state = self._load_state()
        if state is None:
            lines = ["local cluster: not running"]
            if self.layout.state.exists():
                lines.append(f"leftover state: {self.layout.state} (run `down` to remove it)")
            return "\n".join(lines)
        problem = self._health_problem(state)
        lines = [
            f"local cluster: running (since {state['started_at']})"
            if problem is None
            else f"local cluster: NOT healthy ({problem})"
        ]
        for name, record in self._records(state).items():
            lines.append(f"  {name}: pid {record.pid} {'running' if alive(record) else 'EXITED'}, log {record.log}")
        try:
            server, runtime_version = bootstrap.versions(self.layout.kubeconfig)
            lines.append(f"kubernetes: {server}; runtime: {runtime_version}")
        except Exception as exc:  # noqa: BLE001 - status must still print what it knows
            lines.append(f"kubernetes: unknown ({type(exc).__name__})")
        lines.append(f"registries: {render.REGISTRY_ADDR} and {render.AUTH_REGISTRY_ADDR} (TLS + htpasswd)")
        lines.append(f"kubeconfig: {self.layout.kubeconfig}")
        return "\n".join(lines)

    def prepare(self) -> str:
        self._build()
        return f"cached: Kubernetes {self.k8s_version}, {self.runtime.name} {self.runtime_version}, crictl, etcd"

    @property
    def runtime_daemons(self) -> list[str]:
        """The runtime's daemons, whose logs diagnostics show (none for a user's runtime)."""
        return [daemon.name for daemon in self.runtime.daemons(self._node_setup(), PlaceholderBinaries(), None)]

    def env(self) -> dict[str, str]:
        handle = self.running_handle()
        if handle is None:
            raise ClusterError(
                "no healthy local cluster is running: `python -m conformance.cluster up --provider local`"
            )
        return handle.exports()

    # --- state --------------------------------------------------------------------------

    def _load_state(self) -> dict[str, Any] | None:
        try:
            state = json.loads(self.layout.cluster_json.read_text())
        except (OSError, ValueError):
            return None
        return state if isinstance(state, dict) and state.get("format") == STATE_FORMAT else None

    def _save_state(self, state: Mapping[str, Any]) -> None:
        write_atomic(self.layout.cluster_json, json.dumps(state, indent=2, sort_keys=True) + "\n")

    def _records(self, state: Mapping[str, Any] | None) -> dict[str, ProcessRecord]:
        if state is not None:
            # A list, in start order: `down` stops in reverse.
            started = [ProcessRecord.from_dict(raw) for raw in state.get("processes", [])]
            return {record.name: record for record in started}
        # cluster.json is gone: trust a pid file only if that process's command line names our state dir.
        records = {}
        for pidfile in sorted(self.layout.pids.glob("*.pid"), key=lambda p: p.stat().st_mtime):
            try:
                pid = int(pidfile.read_text().strip())
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except (OSError, ValueError):
                continue
            ticks = start_ticks(pid)
            if ticks is not None and str(self.layout.state).encode() in cmdline:
                records[pidfile.stem] = ProcessRecord(pidfile.stem, pid, ticks, str(self.layout.log(pidfile.stem)))
        return records

    def _health_problem(self, state: Mapping[str, Any]) -> str | None:
        if state.get("phase") != "running":
            return "a previous bring-up did not finish"
        for name, record in self._records(state).items():
            if not alive(record):
                return f"{name} (pid {record.pid}) is not running"
        try:
            expect_status(f"https://127.0.0.1:{render.APISERVER_PORT}/readyz", cafile=self.layout.pki / "ca.crt")
            bootstrap.node_ready(self.layout.kubeconfig)
        except Exception as exc:  # noqa: BLE001 - any failure to confirm health means "not healthy"
            return f"API check failed: {exc}"
        return None

    def _check_same_settings(self, state: Mapping[str, Any]) -> None:
        wanted = self._settings()
        running = {key: state.get(key) for key in wanted}
        if running != wanted:
            diff = ", ".join(
                f"{k}: running {running[k]!r}, wanted {wanted[k]!r}" for k in wanted if running[k] != wanted[k]
            )
            raise ClusterError(f"a local cluster with other settings is running ({diff}): run `down` first")

    def _settings(self) -> dict[str, Any]:
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

    def _asked(self) -> dict[str, Any]:
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
        settings = self._settings()
        return {key: settings[key] for key, value in named.items() if value}

    def _handle(self, state: Mapping[str, Any], *, created: bool) -> ClusterHandle:
        return ClusterHandle(
            provider=self.name,
            kubeconfig=str(self.layout.kubeconfig),
            context=None,
            registry=RegistryEndpoint(push=render.REGISTRY_ADDR, pull=render.REGISTRY_ADDR),
            auth_registry=RegistryEndpoint(
                push=render.AUTH_REGISTRY_ADDR,
                pull=render.AUTH_REGISTRY_ADDR,
                username=registries.USER,
                password=self.layout.registry_files.password(),
                ca_file=str(self.layout.registry_files.ca),
            ),
            node_access=NodeAccess(
                crictl=str(self.layout.crictl_wrapper),
                logs={name: ("cat", str(self.layout.log(name))) for name in (*self.runtime_daemons, "kubelet")},
            ),
            created_by_run=created,
            description=(
                f"local: Kubernetes {state['k8s_version']}"
                + (f" (kubelet {state['kubelet_version']})" if state["kubelet_version"] != state["k8s_version"] else "")
                + ", "
                + (
                    f"the user's runtime at {state['runtime_endpoint']}"
                    if state.get("runtime_endpoint")
                    else f"{state['runtime']} {str(state['runtime_version']).lstrip('v')}"
                )
                + f" (cgroupfs, {_cgroup_version()})"
            ),
        )

    # --- the plan -----------------------------------------------------------------------

    @property
    def _cni_conf_dir(self) -> Path:
        """Ours under the state dir; for a user's runtime one that outlives `down`, because a runtime
        watching its CNI directory stops when that directory is removed (containerd: "cni conf dir is
        removed, stop watching")."""
        return USER_RUNTIME_CNI_DIR if self.external_runtime else self.layout.cni_conf_dir

    def _node_setup(self) -> NodeSetup:
        layout = self.layout
        return NodeSetup(
            state_dir=layout.state,
            run_dir=layout.run,
            config_dir=layout.config / self.runtime.name,
            log_dir=layout.pod_logs,
            cgroup_manager="cgroupfs",  # no systemd on the host; the systemd manager would try D-Bus
            pause_image=f"{render.REGISTRY_ADDR}/{_pause_repository()}",
            cni_conf_dir=self._cni_conf_dir,
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

    def _host_paths(self) -> tuple[str, ...]:
        """What the runtime may create outside our state directory: its declared paths, and the directories of
        the registry files it reads from fixed places (CRI-O: /etc/containers/certs.d/<registry>)."""
        setup = self._node_setup()
        cas = (self.runtime.ca_dir(setup, route.location) for route in setup.registries if route.ca_file)
        outside = (str(path) for path in cas if not path.is_relative_to(self.layout.state))
        return tuple(dict.fromkeys((*self.runtime.host_paths, *outside)))

    def _endpoint(self) -> str:
        return f"unix://{self.runtime.socket(self._node_setup())}"

    def _plan(self, binaries: _Binaries, host_ip: str) -> list[Daemon]:
        """Every daemon of the cluster, in start order; `down` stops them in reverse."""
        layout = self.layout
        pki_dir = layout.pki
        setup = self._node_setup()

        def healthz(port: int) -> Any:
            return lambda: expect_status(f"https://127.0.0.1:{port}/healthz", verify=False)

        def remove_sandboxes() -> None:
            # Through the runtime, so CNI releases addresses and tears down veths and iptables rules.
            if layout.crictl_wrapper.exists() and self.runtime.socket(setup).is_socket():
                try:
                    self._remove_sandboxes()
                except ClusterError as exc:
                    progress(f"{exc}; continuing")

        k8s = binaries.kubernetes
        return [
            Daemon(
                "registry",
                render.registry_args(REGISTRY_BINARY, layout.conf("registry.yml")),
                ready=lambda: expect_status(f"http://{render.REGISTRY_ADDR}/v2/"),
                timeout=30,
                after_ready=self._push_pause_image,
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
                    f"https://127.0.0.1:{render.APISERVER_PORT}/readyz", cafile=pki_dir / "ca.crt"
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

    def _keep_logs(self) -> Path | None:
        """`down` removes the state directory, logs included: keep them where the next `up` does not look."""
        if not self.layout.logs.is_dir():
            return None
        kept = self.layout.state.with_name(self.layout.state.name + "-failed-logs")
        shutil.rmtree(kept, ignore_errors=True)
        shutil.copytree(self.layout.logs, kept)
        return kept

    def _remove_sandboxes(self) -> None:
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

    # --- bring-up -----------------------------------------------------------------------

    def _build(self) -> _Binaries:
        debian.ensure_packages((*PACKAGES, *self.runtime.packages))
        _stop_packaged_registry()
        built = gomodules.build(gomodules.KUBERNETES, self.k8s_version, self.cache_dir)
        kubernetes = {name: built.binary(name) for name in gomodules.KUBERNETES.binaries}
        if self.kubelet_version != self.k8s_version:
            older = gomodules.build(gomodules.KUBERNETES, self.kubelet_version, self.cache_dir)
            kubernetes["kubelet"] = older.binary("kubelet")
        etcd = debian.unpacked(ETCD_PACKAGE, ETCD_SUITE, self.cache_dir) / "usr" / "bin" / "etcd"
        debian.runs_here(etcd)
        return _Binaries(
            kubernetes=kubernetes,
            runtime=self.runtime.binaries(self.runtime_version, self.cache_dir),
            crictl=gomodules.build(gomodules.CRICTL, pins.CRICTL, self.cache_dir).binary("crictl"),
            etcd=etcd,
        )

    def _bring_up(self, keep: bool) -> dict[str, Any]:
        layout = self.layout
        binaries = self._build()
        if self.external_runtime:
            self._check_external_runtime(binaries.crictl)
        hostprep.check_ports_free(render.PORTS)
        ip = hostprep.host_ip()
        state: dict[str, Any] = {
            "format": STATE_FORMAT,
            **self._settings(),
            "etcd_version": debian.unpacked_version(binaries.etcd.parents[2]),
            "host_ip": ip,
            "phase": "starting",
            "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "keep": keep,
            "owner": this_process("up").to_dict(),
            "baseline": hostprep.baseline(self._host_paths()),
            "processes": [],
        }
        for directory in (layout.state, layout.logs, layout.pids, layout.config, layout.bin):
            directory.mkdir(parents=True, exist_ok=True)
        self._save_state(state)

        progress(f"preparing host (node {render.NODE_NAME}, address {ip})")
        hostprep.prepare()
        pki.kubeadm_phases(
            binaries.kubernetes["kubeadm"],
            layout,
            k8s_version=self.k8s_version,
            host_ip=ip,
            runtime_endpoint=self._endpoint(),
        )
        self._write_configs(binaries)
        env = {"PATH": DAEMON_PATH, "HOME": "/root", "LANG": "C.UTF-8"}
        for daemon in self._plan(binaries, ip):
            progress(f"starting {daemon.name}")
            record = start(daemon, log=layout.log(daemon.name), pid_dir=layout.pids, base_env=env)
            state["processes"].append(record.to_dict())
            self._save_state(state)
            wait_ready(daemon, record)
        records = self._records(state)
        Kube(str(layout.kubeconfig)).wait_for_service_account(
            "default", timeout=SERVICE_ACCOUNT_TIMEOUT, gone=exited(records["kube-controller-manager"])
        )
        progress("starting a smoke pod from the pause image")
        bootstrap.smoke_pod(
            layout.kubeconfig,
            pause_image=self._node_setup().pause_image,
            timeout=SMOKE_POD_TIMEOUT,
            gone=exited(records["kubelet"]),
        )
        state["phase"] = "running"
        self._save_state(state)
        return state

    def _check_external_runtime(self, crictl: Path) -> None:
        endpoint = self._endpoint()
        if (refused := cri_refusal(crictl, self.runtime.socket(self._node_setup()))) is not None:
            raise ClusterError(
                f"the runtime at {endpoint} does not answer CRI ({refused}): "
                "start it first; the suite never starts a runtime given with --runtime-endpoint"
            )

    def _write_configs(self, binaries: _Binaries) -> None:
        layout = self.layout
        setup = self._node_setup()
        endpoint = self._endpoint()
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
            self._cni_conf_dir / CNI_CONFLIST,
            cni.render_bridge_conflist(
                subnet=render.POD_SUBNET, bridge=render.CNI_BRIDGE, ipam_dir=layout.cni_ipam_dir
            ),
        )
        write_atomic(layout.conf("crictl.yaml"), render.render_crictl_yaml(endpoint))
        if self.options.pod_security:
            write_atomic(layout.conf("admission.yaml"), render_admission_configuration(self.options.pod_security))
        write_executable(
            layout.crictl_wrapper, render.render_crictl_wrapper(binaries.crictl, layout.conf("crictl.yaml"))
        )
        write_atomic(
            layout.conf("kubelet.yaml"),
            render.render_kubelet_config(layout, runtime_endpoint=endpoint, feature_gates=self.kubelet_gates),
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

    def _push_pause_image(self) -> None:
        progress(f"pushing the pause image to {render.REGISTRY_ADDR}")
        client = RegistryClient(RegistryEndpoint(push=render.REGISTRY_ADDR, pull=render.REGISTRY_ADDR))
        client.ping()
        push_base_images(client, which=("pause",), cache_dir=self.cache_dir)

    # --- teardown -----------------------------------------------------------------------

    def _teardown(self, state: Mapping[str, Any] | None) -> None:
        layout = self.layout
        records = self._records(state)
        plan = {
            daemon.name: daemon
            for daemon in self._plan(_Binaries(PlaceholderBinaries(), PlaceholderBinaries(), Path(), Path()), "")
        }
        # Without the baseline taken before `up` we cannot tell our chains, bridge and directories
        # from someone else's, so host-wide cleanup is skipped and only our state dir is handled.
        baseline: Mapping[str, Any] | None = (state or {}).get("baseline")
        for name in reversed(list(records)):
            daemon = plan.get(name)
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
            prefixes = (*hostprep.KUBELET_MOUNT_PREFIXES, *self.runtime.mount_prefixes)
            leftover = hostprep.unmount_all([str(layout.state), *prefixes])
            hostprep.delete_bridge(bool(baseline.get("bridge", False)))
            hostprep.delete_iptables_chains(baseline.get("iptables", {}))
            hostprep.remove_cgroups(baseline.get("cgroups", []))
            hostprep.remove_created_paths(baseline.get("paths", []), self._host_paths())
            hostprep.restore_sysctls(baseline.get("sysctls", {}))
        if leftover:
            # Deleting through a live mount would write into the mounted filesystem: keep the state.
            raise ClusterError(
                f"could not unmount {leftover[0]} (and {len(leftover) - 1} more); state kept in {layout.state}"
            )
        if self.external_runtime:
            (USER_RUNTIME_CNI_DIR / CNI_CONFLIST).unlink(missing_ok=True)  # the directory stays for that runtime
        shutil.rmtree(layout.state, ignore_errors=True)
        if layout.state.exists():
            raise ClusterError(f"could not remove {layout.state}: remove it by hand")


def _pause_repository() -> str:
    return f"{PAUSE_REPOSITORY}:{PAUSE_TAG}"


def _stop_packaged_registry() -> None:
    """Debian's docker-registry package may start a registry on :5000 (all interfaces); ours must own that port."""
    if not Path("/etc/init.d/docker-registry").exists():
        return
    if Path("/var/run/docker-registry.pid").exists():
        run(["/etc/init.d/docker-registry", "stop"], what="stop Debian's docker-registry service", check=False)
    run(["update-rc.d", "docker-registry", "disable"], what="disable Debian's docker-registry service", check=False)
