"""`LocalProvider`: a real single-node cluster as plain host processes on this machine.

Start order (offline-cluster.md §11.3): host prep → registries (+ pause image) → etcd →
kube-apiserver → RBAC → controller-manager, scheduler → CRI-O → kubelet → default ServiceAccount
→ smoke Pod. `<state>/cluster.json` is rewritten after every daemon starts, so `down` (also the
automatic one after a failed or interrupted `up`) always knows exactly what to stop.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import secrets
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from conformance.cluster.base import ClusterHandle, NodeAccess, RegistryEndpoint
from conformance.cluster.errors import ClusterError
from conformance.cluster.local import build, config, hostprep, kube, packages, pki, processes
from conformance.cluster.local.config import Layout
from conformance.cluster.local.processes import ProcessRecord, not_yet, wait_for
from conformance.cluster.progress import progress

DEFAULT_K8S_VERSION = "v1.36.3"
DEFAULT_CRIO_VERSION = "v1.36.3"
DEFAULT_CRICTL_VERSION = "v1.36.0"
DEFAULT_CACHE_DIR = Path("/var/cache/ivc")
DEFAULT_STATE_DIR = Path("/var/lib/ivc/local")
STATE_FORMAT = 1
DAEMON_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
REGISTRY_BINARY = "/usr/bin/docker-registry"
# Stop order for `down`: kubelet first (so it doesn't restart pods), runtime, control plane, data.
STOP_ORDER = (
    "kubelet",
    "crio",
    "kube-controller-manager",
    "kube-scheduler",
    "kube-apiserver",
    "etcd",
    "auth-registry",
    "registry",
)
TIMEOUTS = {
    "registry": 30,
    "etcd": 60,
    "kube-apiserver": 180,
    "kube-controller-manager": 90,
    "kube-scheduler": 90,
    "crio": 90,
    "node": 180,
    "service-account": 90,
    "smoke-pod": 180,
}


def resolve_crio_version(version: str) -> str:
    """CRI-O is built from an exact module version; a bare minor stream (`v1.36`) means our pin."""
    if version.count(".") == 1:
        if version.lstrip("v") == DEFAULT_CRIO_VERSION.lstrip("v").rsplit(".", 1)[0]:
            return DEFAULT_CRIO_VERSION
        raise ClusterError(f"--crio-version {version}: the local provider builds an exact release, e.g. v1.36.3")
    return version if version.startswith("v") else "v" + version


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The local provider's options, shared by `python -m conformance.cluster` and its own __main__."""
    group = parser.add_argument_group("local provider (offline: host processes, built from the Go proxy)")
    group.add_argument("--k8s-version", default=DEFAULT_K8S_VERSION, help=f"default: {DEFAULT_K8S_VERSION}")
    group.add_argument("--crio-version", default=DEFAULT_CRIO_VERSION, help=f"default: {DEFAULT_CRIO_VERSION}")
    group.add_argument("--crictl-version", default=DEFAULT_CRICTL_VERSION, help=f"default: {DEFAULT_CRICTL_VERSION}")
    group.add_argument("--feature-gates", default="", help="extra gates k=v,k=v, e.g. ImageVolume=false (≤1.35)")
    group.add_argument("--admission-plugins", default="", help="extra admission plugins, e.g. AlwaysPullImages")
    group.add_argument("--cache-dir", default=str(DEFAULT_CACHE_DIR), help="build cache (default: %(default)s)")
    group.add_argument("--state-dir", default=str(DEFAULT_STATE_DIR), help="cluster state (default: %(default)s)")


def from_args(args: argparse.Namespace) -> LocalProvider:
    return LocalProvider(
        k8s_version=args.k8s_version,
        crio_version=args.crio_version,
        crictl_version=args.crictl_version,
        feature_gates=args.feature_gates or "",
        admission_plugins=args.admission_plugins or "",
        cache_dir=args.cache_dir,
        state_dir=args.state_dir,
    )


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


def _daemon_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    # A clean environment: ETCD_*/REGISTRY_*/KUBE* variables of the caller must not leak into daemons.
    env = {"PATH": DAEMON_PATH, "HOME": "/root", "LANG": "C.UTF-8"}
    env.update(extra or {})
    return env


def _cgroup_version() -> str:
    return "cgroup v2" if Path("/sys/fs/cgroup/cgroup.controllers").exists() else "cgroup v1"


class LocalProvider:
    name = "local"

    def __init__(
        self,
        *,
        k8s_version: str = DEFAULT_K8S_VERSION,
        crio_version: str = DEFAULT_CRIO_VERSION,
        crictl_version: str = DEFAULT_CRICTL_VERSION,
        feature_gates: Mapping[str, bool] | str | None = None,
        admission_plugins: Sequence[str] | str = (),
        cache_dir: str | Path = DEFAULT_CACHE_DIR,
        state_dir: str | Path = DEFAULT_STATE_DIR,
    ) -> None:
        try:
            config.minor_version(k8s_version)  # validate before anything slow happens
            if isinstance(feature_gates, str):  # the CLI and the pytest plugin pass the flag string
                feature_gates = config.parse_feature_gates(feature_gates)
        except ValueError as exc:
            raise ClusterError(str(exc)) from None
        if isinstance(admission_plugins, str):
            admission_plugins = [p.strip() for p in admission_plugins.split(",") if p.strip()]
        self.k8s_version = k8s_version
        self.crio_version = resolve_crio_version(crio_version)
        self.crictl_version = crictl_version
        self.feature_gates = dict(feature_gates or {})
        self.admission_plugins = list(admission_plugins)
        self.cache_dir = Path(cache_dir)
        self.layout = Layout(Path(state_dir))

    # --- public API ---------------------------------------------------------------------

    def up(self) -> ClusterHandle:
        hostprep.require_root()
        state = self._load_state()
        if state is not None:
            problem = self._health_problem(state)
            if problem is None:
                self._check_same_settings(state)
                progress(f"local cluster already running (since {state['started_at']}), reusing it")
                return self._handle(state)
            progress(f"found a local cluster that is not healthy ({problem}); removing it first")
            self.down()
        elif self.layout.state.exists():
            progress(f"found leftovers of a local cluster in {self.layout.state}; removing them first")
            self.down()
        started = time.monotonic()
        with _sigterm_interrupts():
            try:
                state = self._bring_up()
            except BaseException as exc:
                reason = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
                state = self._load_state()
                if state is None and not self.layout.state.exists():
                    raise  # failed before anything was started
                progress(f"local cluster bring-up {reason}; tearing down what was started")
                try:
                    self._teardown(state)
                except Exception as cleanup_error:  # noqa: BLE001 - the original error matters more
                    progress(f"teardown after failed bring-up was incomplete: {cleanup_error}")
                raise
        progress(f"local cluster is up in {time.monotonic() - started:.0f}s (kubeconfig {self.layout.kubeconfig})")
        return self._handle(state)

    def running_handle(self) -> ClusterHandle | None:
        """The handle of a healthy running local cluster, else None (starts nothing).

        Like the kind provider, a running cluster is reused as it is; the suite discovers its versions.
        """
        state = self._load_state()
        if state is None or os.geteuid() != 0 or self._health_problem(state) is not None:
            return None
        if {key: state.get(key) for key in self._settings()} != self._settings():
            progress("the running local cluster has other settings than requested; reusing it as it is")
        progress(f"local cluster already running (since {state['started_at']}), reusing it")
        return self._handle(state)

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
        kubeconfig = self.layout.kubeconfig
        try:
            lines.append(f"kubernetes: {kube.server_version(kubeconfig)}")
            lines.append(f"runtime: {kube.runtime_version(kubeconfig)}")
        except Exception as exc:  # noqa: BLE001 - status must still print what it knows
            lines.append(f"kubernetes: unknown ({type(exc).__name__})")
        registries = f"{config.REGISTRY_ADDR} and {config.AUTH_REGISTRY_ADDR} (TLS + htpasswd)"
        lines.append(f"registry: {self._registry_version()} on {registries}")
        lines.append(f"kubeconfig: {kubeconfig}")
        lines.append(f"logs: {self.layout.logs}")
        return "\n".join(lines)

    def env(self) -> str:
        return f"export KUBECONFIG={self.layout.kubeconfig}\nexport IVC_REGISTRY={config.REGISTRY_ADDR}\n"

    # --- state --------------------------------------------------------------------------

    def _load_state(self) -> dict[str, Any] | None:
        try:
            state = json.loads(self.layout.cluster_json.read_text())
        except (OSError, ValueError):
            return None
        return state if state.get("format") == STATE_FORMAT else None

    def _save_state(self, state: Mapping[str, Any]) -> None:
        path = self.layout.cluster_json
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")
        tmp.replace(path)  # atomic: a crash never leaves a half-written record

    def _records(self, state: Mapping[str, Any] | None) -> dict[str, ProcessRecord]:
        if state is not None:
            return {name: ProcessRecord.from_dict(raw) for name, raw in state.get("processes", {}).items()}
        # cluster.json is gone: trust a pid file only if that process's command line names our state dir.
        records = {}
        for pidfile in self.layout.pids.glob("*.pid"):
            try:
                pid = int(pidfile.read_text().strip())
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except (OSError, ValueError):
                continue
            ticks = processes.start_ticks(pid)
            if ticks is not None and str(self.layout.state).encode() in cmdline:
                records[pidfile.stem] = ProcessRecord(pidfile.stem, pid, ticks, str(self.layout.log(pidfile.stem)))
        return records

    def _health_problem(self, state: Mapping[str, Any]) -> str | None:
        if state.get("phase") != "running":
            return "a previous bring-up did not finish"
        for name, record in self._records(state).items():
            if not processes.alive(record):
                return f"{name} (pid {record.pid}) is not running"
        try:
            kube.expect_status(f"https://127.0.0.1:{config.APISERVER_PORT}/readyz", cafile=self.layout.pki / "ca.crt")
            if not kube.node_ready(self.layout.kubeconfig):
                return f"node {config.NODE_NAME} is not Ready"
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
            "crio_version": self.crio_version,
            "crictl_version": self.crictl_version,
            "feature_gates": dict(sorted(self.feature_gates.items())),
            "admission_plugins": self.admission_plugins,
        }

    def _handle(self, state: Mapping[str, Any]) -> ClusterHandle:
        password = pki.read_registry_password(self.layout)
        return ClusterHandle(
            provider=self.name,
            kubeconfig=str(self.layout.kubeconfig),
            context=None,
            registry=RegistryEndpoint(push=config.REGISTRY_ADDR, pull=config.REGISTRY_ADDR),
            auth_registry=RegistryEndpoint(
                push=config.AUTH_REGISTRY_ADDR,
                pull=config.AUTH_REGISTRY_ADDR,
                username=config.AUTH_REGISTRY_USER,
                password=password,
                ca_file=str(self.layout.registry_ca),
            ),
            node_access=NodeAccess(
                crictl=str(self.layout.crictl_wrapper),
                runtime_endpoint=config.CRIO_ENDPOINT,
                log_dir=str(self.layout.logs),
            ),
            description=(
                f"local: Kubernetes {state['k8s_version']}, CRI-O {str(state['crio_version']).lstrip('v')} "
                f"(cgroupfs, {_cgroup_version()})"
            ),
        )

    # --- bring-up -----------------------------------------------------------------------

    def _bring_up(self) -> dict[str, Any]:
        layout = self.layout
        packages.ensure_runtime_packages()
        packages.ensure_build_packages()
        kubernetes = build.build_kubernetes(self.k8s_version, self.cache_dir)
        crio = build.build_crio(self.crio_version, self.cache_dir)
        crictl = build.build_crictl(self.crictl_version, self.cache_dir)
        etcd = packages.ensure_etcd(self.cache_dir)
        hostprep.check_ports_free(config.PORTS)

        ip = hostprep.host_ip()
        state: dict[str, Any] = {
            "format": STATE_FORMAT,
            **self._settings(),
            "etcd_version": packages.etcd_version(self.cache_dir),
            "host_ip": ip,
            "ports": config.PORTS,
            "phase": "starting",
            "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "baseline": hostprep.baseline(),
            "processes": {},
        }
        for directory in (layout.state, layout.logs, layout.pids, layout.config, layout.bin):
            directory.mkdir(parents=True, exist_ok=True)
        self._save_state(state)

        def launch(name: str, argv: Sequence[str], env: Mapping[str, str] | None = None) -> ProcessRecord:
            progress(f"starting {name}")
            record = processes.start(name, argv, log=layout.log(name), pid_dir=layout.pids, env=_daemon_env(env))
            state["processes"][name] = record.to_dict()
            self._save_state(state)
            return record

        progress(f"preparing host (node {config.NODE_NAME}, address {ip})")
        hostprep.prepare()
        pki.kubeadm_phases(kubernetes.binary("kubeadm"), layout, k8s_version=self.k8s_version, host_ip=ip)
        self._write_static_configs(crictl.binary("crictl"))

        # Registries first: the pause image must be in place before CRI-O creates any sandbox.
        tls = pki.registry_tls(layout)
        pki.registry_htpasswd(layout)
        pki.install_registry_ca(layout)
        plain_conf, auth_conf = layout.conf("registry.yml"), layout.conf("auth-registry.yml")
        plain_conf.write_text(
            config.render_registry_config(
                addr=config.REGISTRY_ADDR, root=layout.registry_storage / "plain", secret=secrets.token_hex(16)
            )
        )
        pki.write_private(
            auth_conf,
            config.render_registry_config(
                addr=config.AUTH_REGISTRY_ADDR,
                root=layout.registry_storage / "auth",
                secret=secrets.token_hex(16),
                tls=tls,
                htpasswd=layout.htpasswd,
            ),
        )
        registry = launch("registry", config.registry_args(REGISTRY_BINARY, plain_conf))
        auth_registry = launch("auth-registry", config.registry_args(REGISTRY_BINARY, auth_conf))
        wait_for(
            f"registry on {config.REGISTRY_ADDR}",
            lambda: kube.expect_status(f"http://{config.REGISTRY_ADDR}/v2/"),
            timeout=TIMEOUTS["registry"],
            record=registry,
        )
        wait_for(
            f"auth registry on {config.AUTH_REGISTRY_ADDR}",
            lambda: kube.expect_status(f"https://{config.AUTH_REGISTRY_ADDR}/v2/", (401,), cafile=layout.registry_ca),
            timeout=TIMEOUTS["registry"],
            record=auth_registry,
        )
        pause_image = self._push_pause_image()
        state["pause_image"] = pause_image
        runc = config.RUNC
        if not hostprep.cgroup_controller_mounted("hugetlb"):
            runc_wrapper = layout.bin / "runc"
            runc_wrapper.write_text(config.render_runc_wrapper())
            runc_wrapper.chmod(0o755)
            runc = str(runc_wrapper)
        layout.conf("crio.conf").write_text(
            config.render_crio_conf(
                layout,
                pause_image=pause_image,
                pinns_path=str(crio.binary("pinns")),
                cni_plugin_dirs=[str(packages.CNI_PLUGIN_DIR)],
                runc_path=runc,
            )
        )

        etcd_record = launch("etcd", config.etcd_args(etcd, layout))
        wait_for(
            "etcd /health",
            lambda: kube.expect_status(f"http://127.0.0.1:{config.ETCD_CLIENT_PORT}/health"),
            timeout=TIMEOUTS["etcd"],
            record=etcd_record,
        )

        apiserver = launch(
            "kube-apiserver",
            config.apiserver_args(
                kubernetes.binary("kube-apiserver"),
                layout,
                host_ip=ip,
                feature_gates=self.feature_gates,
                admission_plugins=self.admission_plugins,
                k8s_version=self.k8s_version,
            ),
        )
        wait_for(
            "kube-apiserver /readyz",
            lambda: kube.expect_status(
                f"https://127.0.0.1:{config.APISERVER_PORT}/readyz", cafile=layout.pki / "ca.crt"
            ),
            timeout=TIMEOUTS["kube-apiserver"],
            record=apiserver,
        )
        kube.create_rbac(layout.kubeconfig)

        gates = {"feature_gates": self.feature_gates, "k8s_version": self.k8s_version}
        controller_manager = launch(
            "kube-controller-manager",
            config.controller_manager_args(kubernetes.binary("kube-controller-manager"), layout, **gates),
        )
        scheduler = launch(
            "kube-scheduler", config.scheduler_args(kubernetes.binary("kube-scheduler"), layout, **gates)
        )
        for record, port in ((controller_manager, config.CONTROLLER_MANAGER_PORT), (scheduler, config.SCHEDULER_PORT)):
            wait_for(
                f"{record.name} /healthz",
                lambda port=port: kube.expect_status(f"https://127.0.0.1:{port}/healthz", verify=False),
                timeout=TIMEOUTS[record.name],
                record=record,
            )

        crio_record = launch(
            "crio", config.crio_args(crio.binary("crio"), layout), env=config.crio_env(layout, DAEMON_PATH)
        )
        wait_for("CRI-O socket and `crictl info`", self._crictl_info, timeout=TIMEOUTS["crio"], record=crio_record)

        kubelet = launch("kubelet", config.kubelet_args(kubernetes.binary("kubelet"), layout, host_ip=ip))
        kube.wait_node_ready(layout.kubeconfig, kubelet=kubelet, timeout=TIMEOUTS["node"])
        kube.wait_default_service_account(
            layout.kubeconfig, controller_manager=controller_manager, timeout=TIMEOUTS["service-account"]
        )
        progress("starting a smoke pod from the pause image")
        kube.smoke_pod(layout.kubeconfig, pause_image=pause_image, kubelet=kubelet, timeout=TIMEOUTS["smoke-pod"])

        state["phase"] = "running"
        self._save_state(state)
        return state

    def _write_static_configs(self, crictl: Path) -> None:
        layout = self.layout
        layout.conf("crio.conf.d").mkdir(parents=True, exist_ok=True)
        layout.conf("registries.conf.d").mkdir(parents=True, exist_ok=True)
        layout.conf("registries.conf").write_text(config.render_registries_conf())
        layout.conf("policy.json").write_text(config.render_policy_json())
        layout.conf("storage.conf").write_text(config.render_storage_conf(layout))
        layout.conf("crictl.yaml").write_text(config.render_crictl_yaml())
        layout.conf("kubelet.yaml").write_text(
            config.render_kubelet_config(layout, k8s_version=self.k8s_version, feature_gates=self.feature_gates)
        )
        layout.cni_conf_dir.mkdir(parents=True, exist_ok=True)
        (layout.cni_conf_dir / "10-ivc-bridge.conflist").write_text(config.render_cni_conflist(layout))
        layout.crictl_wrapper.write_text(config.render_crictl_wrapper(crictl, layout.conf("crictl.yaml")))
        layout.crictl_wrapper.chmod(0o755)

    def _push_pause_image(self) -> str:
        try:
            from conformance.oci.node_images import push_node_images
            from conformance.oci.registry import RegistryClient
        except ImportError as exc:
            raise ClusterError(f"cannot push the pause image: conformance.oci is not importable ({exc})") from exc
        progress(f"pushing the pause image to {config.REGISTRY_ADDR}")
        client = RegistryClient(RegistryEndpoint(push=config.REGISTRY_ADDR, pull=config.REGISTRY_ADDR))
        client.ping()
        return push_node_images(client, which=("pause",))["pause"]

    def _crictl_info(self) -> None:
        if not Path(config.CRIO_SOCKET).is_socket():
            raise not_yet(f"{config.CRIO_SOCKET} does not exist yet")
        proc = subprocess.run(
            [str(self.layout.crictl_wrapper), "info"], capture_output=True, text=True, timeout=30, check=False
        )
        if proc.returncode != 0:
            raise not_yet(f"crictl info: {(proc.stderr or proc.stdout).strip()[-200:]}")

    def _registry_version(self) -> str:
        try:
            out = subprocess.run([REGISTRY_BINARY, "--version"], capture_output=True, text=True, check=False).stdout
        except OSError:
            return "docker-registry (not installed)"
        return out.strip() or "docker-registry (unknown version)"

    # --- teardown -----------------------------------------------------------------------

    def _teardown(self, state: Mapping[str, Any] | None) -> None:
        layout = self.layout
        records = self._records(state)
        # Without the baseline taken before `up` we cannot tell our chains, bridge and directories
        # from someone else's, so host-wide cleanup is skipped and only our state dir is handled.
        baseline: Mapping[str, Any] | None = (state or {}).get("baseline")

        if "kubelet" in records:
            progress("stopping kubelet")
            processes.stop(records["kubelet"], timeout=30)
        crio = records.get("crio")
        if crio is not None and processes.alive(crio) and layout.crictl_wrapper.exists():
            # Removing the sandboxes through CRI-O lets CNI release IPs and tear down veths/iptables.
            progress("removing all pod sandboxes (crictl rmp -fa)")
            try:
                processes.run([str(layout.crictl_wrapper), "rmp", "-fa"], what="crictl rmp -fa", timeout=180)
            except ClusterError as exc:
                progress(f"{exc}; continuing")
        for name in STOP_ORDER[1:]:
            if name in records:
                progress(f"stopping {name}")
                processes.stop(records[name], timeout=30)
            if name == "crio":
                # conmon double-forks away from CRI-O; ours are recognisable by our state dir in argv.
                processes.kill_pids(processes.processes_with_arg("conmon", str(layout.state)))
                if baseline is not None:
                    hostprep.kill_cgroup_members(baseline.get("cgroups", []))

        if baseline is None:
            progress("no record of the host before `up`: cleaning up only below " + str(layout.state))
            leftover = hostprep.unmount_all([str(layout.state)])
        else:
            progress("cleaning up mounts, network, iptables and cgroups")
            leftover = hostprep.unmount_all([str(layout.state), *hostprep.MOUNT_PREFIXES])
            hostprep.delete_bridge(bool(baseline.get("bridge", False)))
            hostprep.delete_iptables_chains(baseline.get("iptables", {}))
            hostprep.remove_cgroups(baseline.get("cgroups", []))
            hostprep.remove_created_paths(baseline.get("paths", []))
            hostprep.restore_sysctls(baseline.get("sysctls", {}))
        if leftover:
            # Deleting through a live mount would write into the mounted filesystem: keep the state.
            raise ClusterError(
                f"could not unmount {leftover[0]} (and {len(leftover) - 1} more); state kept in {layout.state}"
            )
        shutil.rmtree(layout.state, ignore_errors=True)
        if layout.state.exists():
            raise ClusterError(f"could not remove {layout.state}: remove it by hand")
