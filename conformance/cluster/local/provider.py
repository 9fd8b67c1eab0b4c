"""`LocalProvider`: a real single-node cluster as plain host processes on this machine.

What the cluster is — versions, files, and the daemons in start order — is its `LocalPlan` (plan.py);
this module keeps the contract and the state. `<state>/cluster.json` is rewritten after every
daemon starts, so `down` (teardown.py) — also the automatic one after a failed or interrupted `up` —
knows exactly what to stop.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

from conformance.cluster import registries
from conformance.cluster.contract import ClusterHandle, NodeAccess, RegistryEndpoint
from conformance.cluster.daemons import (
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
from conformance.cluster.local.plan import PROVIDER_NAME, LocalPlan
from conformance.cluster.local.teardown import keep_logs, teardown
from conformance.cluster.options import ClusterOptions
from conformance.cluster.probes import expect_status
from conformance.infra import debian
from conformance.infra.errors import ClusterError
from conformance.infra.files import write_atomic
from conformance.infra.kube import Kube
from conformance.infra.progress import progress

STATE_FORMAT = 2
DAEMON_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "LANG": "C.UTF-8",
}
SMOKE_POD_TIMEOUT = 180.0
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


def _cgroup_version() -> str:
    return "cgroup v2" if Path("/sys/fs/cgroup/cgroup.controllers").exists() else "cgroup v1"


class LocalProvider:
    name: ClassVar[str] = PROVIDER_NAME

    def __init__(self, options: ClusterOptions) -> None:
        self.options = options
        self.plan = LocalPlan(options)
        self.layout = self.plan.layout

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
                kept = keep_logs(self.layout)
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
        asked = self.plan.asked()
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
        plan = self.plan
        plan.build()
        return f"cached: Kubernetes {plan.k8s_version}, {plan.runtime.name} {plan.runtime_version}, crictl, etcd"

    def restart(self, component: str, node: str | None = None) -> None:
        """Stop the component's daemons and start them again, without their stop hooks (which remove Pod
        sandboxes and the runtime's monitors): running containers stay; returns once it is ready again."""
        hostprep.require_root()
        state = self._load_state()
        if state is None or (problem := self._health_problem(state)) is not None:
            raise ClusterError(f"no healthy local cluster to restart the {component} of ({problem or 'not running'})")
        plan = self.plan
        if not plan.restartable(component):
            raise ClusterError(
                f"the {component} of this local cluster is not the suite's to restart (--runtime-endpoint)"
            )
        daemons = {daemon.name: daemon for daemon in plan.daemons(plan.build(), state["host_ip"])}
        records = self._records(state)
        for name in plan.components[component]:
            progress(f"restarting {name}")
            stop(records[name])
            record = start(daemons[name], log=self.layout.log(name), pid_dir=self.layout.pids, base_env=DAEMON_ENV)
            state["processes"] = [record.to_dict() if raw["name"] == name else raw for raw in state["processes"]]
            self._save_state(state)
            wait_ready(daemons[name], record)

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
        wanted = self.plan.settings()
        running = {key: state.get(key) for key in wanted}
        if running != wanted:
            diff = ", ".join(
                f"{k}: running {running[k]!r}, wanted {wanted[k]!r}" for k in wanted if running[k] != wanted[k]
            )
            raise ClusterError(f"a local cluster with other settings is running ({diff}): run `down` first")

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
                logs={name: ("cat", str(self.layout.log(name))) for name in (*self.plan.runtime_daemons, "kubelet")},
                restart={
                    component: self._restart_command(component)
                    for component in ("kubelet", "runtime")
                    if self.plan.restartable(component)
                },
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

    # --- bring-up -----------------------------------------------------------------------

    def _bring_up(self, keep: bool) -> dict[str, Any]:
        layout = self.layout
        plan = self.plan
        binaries = plan.build()
        if plan.external_runtime:
            plan.check_external_runtime(binaries.crictl)
        hostprep.check_ports_free(render.PORTS)
        ip = hostprep.host_ip()
        state: dict[str, Any] = {
            "format": STATE_FORMAT,
            **plan.settings(),
            "etcd_version": debian.unpacked_version(binaries.etcd.parents[2]),
            "host_ip": ip,
            "phase": "starting",
            "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "keep": keep,
            "owner": this_process("up").to_dict(),
            "baseline": hostprep.baseline(plan.host_paths()),
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
            k8s_version=plan.k8s_version,
            host_ip=ip,
            runtime_endpoint=plan.endpoint,
        )
        plan.write_configs(binaries)
        for daemon in plan.daemons(binaries, ip):
            progress(f"starting {daemon.name}")
            record = start(daemon, log=layout.log(daemon.name), pid_dir=layout.pids, base_env=DAEMON_ENV)
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
            pause_image=plan.node_setup().pause_image,
            timeout=SMOKE_POD_TIMEOUT,
            gone=exited(records["kubelet"]),
        )
        state["phase"] = "running"
        self._save_state(state)
        return state

    def _restart_command(self, component: str) -> tuple[str, ...]:
        """This provider's `restart`, through the CLI: the handle reaches xdist workers as JSON."""
        cli = (sys.executable, "-m", "conformance.cluster", "restart", "--provider", self.name)
        return (*cli, "--component", component, "--state-dir", str(self.layout.state))

    # --- teardown -----------------------------------------------------------------------

    def _teardown(self, state: Mapping[str, Any] | None) -> None:
        teardown(self.plan, self._records(state), (state or {}).get("baseline"))
