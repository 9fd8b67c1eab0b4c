"""`KindProvider`: a kind cluster whose nodes run CRI-O (or each node its own runtime), with registry
containers wired into them.

Node images are built here, offline (`node_image.py`), one per distinct runtime; kind comes from PATH
or is built from its Go module. The kubeconfig is private to the suite (never ~/.kube/config). What
this provider creates carries its marks (labels, the node's owner file with the settings it was made
with), so `down` in any later process removes exactly that; a kind cluster of the same name that the
suite did not create is refused, never touched; one made with other settings than a run asks for is
refused in one line (or replaced, when a killed run left it).
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from conformance.cluster import admission, gates, pins, registries
from conformance.cluster.contract import ClusterHandle, RegistryEndpoint
from conformance.cluster.daemons import owner_alive, this_process
from conformance.cluster.kind import cluster_config, node_image, registry
from conformance.cluster.kind.marks import MANAGED_BY, OWNER_MARKER, owner
from conformance.cluster.kind.tools import Tools, check_privileged, find_tools, shielded_from_ctrl_c
from conformance.cluster.options import ClusterOptions
from conformance.cluster.runtimes import Runtime, select
from conformance.cluster.state import provider_dir
from conformance.cluster.systemd_nodes import restart_commands, systemd_node_access
from conformance.infra.errors import ClusterError
from conformance.infra.files import write_atomic, write_private
from conformance.infra.kube import Kube
from conformance.infra.progress import progress
from conformance.infra.versions import release_in

DEFAULT_NODES = 2  # one control-plane and one worker, as in the seed tutorial
READY_TIMEOUT = 300.0
SERVICE_ACCOUNT_TIMEOUT = 120.0
# Beside the owner mark in the control-plane node: the settings the cluster was made with, and whether
# the run that made it keeps it (`up`, --keep-cluster) or was to remove it (then a killed run left it).
SETTINGS_MARKER = "/kind/ivc-settings.json"


@dataclass(frozen=True)
class NodeRuntime:
    """What one node runs: a declared runtime at a version (its node image follows from it)."""

    runtime: Runtime
    version: str

    @property
    def label(self) -> str:
        return f"{self.runtime.name}:{self.version}"

    @property
    def cri_socket(self) -> str:
        return f"unix://{self.runtime.socket(node_image.node_setup(self.runtime.name))}"


class KindProvider:
    name: ClassVar[str] = "kind"

    def __init__(self, options: ClusterOptions) -> None:
        """Without `--k8s-version`, the version comes from a `--node-image` tag like `:v1.35.4`, else the pin;
        it decides the gates, which are validated here, before anything slow happens."""
        self.options = options
        self.cluster_name = cluster_config.validate_cluster_name(
            options.cluster_name or cluster_config.DEFAULT_CLUSTER_NAME
        )
        self.k8s_version = options.k8s_version or release_in(options.node_image) or pins.KUBERNETES
        if options.node_runtimes:
            chosen = [(select(name), version) for name, version in options.node_runtimes]
        else:
            chosen = [(select(options.runtime), options.runtime_version)] * (options.nodes or DEFAULT_NODES)
        self.node_runtimes = [NodeRuntime(runtime, version or runtime.default_version) for runtime, version in chosen]
        self.recipes = {
            each.label: node_image.Recipe(
                k8s_version=self.k8s_version,
                runtime=each.runtime.name,
                runtime_version=each.version,
                crictl_version=pins.CRICTL,
                cache_dir=options.cache_dir,
            )
            for each in self.node_runtimes
        }
        self.prebuilt_image = options.node_image
        self.nodes = len(self.node_runtimes)
        self.feature_gates = dict(options.feature_gates)
        self.admission_plugins = options.admission_plugins
        self.pod_security = options.pod_security
        cluster_config.homogeneous(self.nodes)  # a node count that cannot be a cluster fails here, before any build
        gates.gates_for(self.k8s_version, self.feature_gates)
        self._tools: Tools | None = None

    @property
    def mixed(self) -> bool:
        """The nodes run different runtimes (or versions): one node image each, named per node."""
        return len(self.recipes) > 1

    def settings(self) -> dict[str, Any]:
        """What makes this cluster this cluster: compared with a running one before it is reused."""
        return {
            "k8s_version": self.k8s_version,
            "node_runtimes": [each.label for each in self.node_runtimes],
            "feature_gates": dict(sorted(self.feature_gates.items())),
            "admission_plugins": list(self.admission_plugins),
            "pod_security": self.pod_security,
        }

    def asked(self) -> dict[str, Any]:
        """The settings the user named (flags given), which a running cluster must match to be reused."""
        given = self.options
        wanted = self.settings()
        keys = {
            "k8s_version": given.k8s_version is not None,
            "node_runtimes": bool(given.node_runtimes or given.runtime or given.runtime_version or given.nodes),
            "feature_gates": bool(given.feature_gates),
            "admission_plugins": bool(given.admission_plugins),
            "pod_security": given.pod_security is not None,
        }
        return {key: wanted[key] for key, named in keys.items() if named}

    @property
    def tools(self) -> Tools:
        if self._tools is None:
            self._tools = find_tools(self.options.cache_dir)
        return self._tools

    @property
    def directory(self) -> Path:
        return provider_dir(self.name) / self.cluster_name

    @property
    def kubeconfig(self) -> Path:
        return self.directory / "kubeconfig"

    @property
    def registry_files(self) -> registries.RegistryFiles:
        return registries.RegistryFiles(self.directory / "registry")

    @property
    def context(self) -> str:
        return f"kind-{self.cluster_name}"

    @property
    def control_plane(self) -> str:
        return f"{self.cluster_name}-control-plane"

    # --- the contract -------------------------------------------------------------------

    def prepare(self) -> str:
        """Everything `up` needs that takes time, without starting a cluster: the node images."""
        return ", ".join(sorted(set(self._images().values())))

    def _images(self) -> dict[str, str]:
        """Node image per runtime label (built when not cached)."""
        cache = self.options.cache_dir
        check_privileged(self.tools, registry.image(self.tools, cache))
        if self.prebuilt_image:
            return dict.fromkeys(self.recipes, self.prebuilt_image)
        return {label: node_image.ensure(self.tools, recipe) for label, recipe in self.recipes.items()}

    def running_handle(self) -> ClusterHandle | None:
        """Our cluster of this name, its registries up and on its network, our kubeconfig written; else None.

        A cluster made with other settings than the ones the user named is refused in one line, or, when
        a run that was to remove it was killed, removed (the caller then brings up the one asked for).
        A matching cluster a killed run left is adopted: this run removes it at the end.
        """
        if not self.kubeconfig.exists() or not self._cluster_exists() or not self._cluster_is_ours():
            return None
        if not registry.usable(self.tools):
            return None
        made = self._made_with()
        left_by_killed_run = not made.get("keep", True) and not owner_alive(made.get("owner"))
        found = {key: made.get("settings", {}).get(key) for key in self.asked()}
        if found != self.asked():
            if left_by_killed_run:
                progress(f"kind: replacing cluster '{self.cluster_name}' a killed run left ({made.get('settings')})")
                self.down()
                return None
            raise ClusterError(
                f"kind cluster '{self.cluster_name}' runs with {found}, this run asks for {self.asked()}: remove it "
                f"with `python -m conformance.cluster down --provider kind`, or pass --cluster-name NAME for another"
            )
        return self._handle(created=left_by_killed_run)

    def _made_with(self) -> dict[str, Any]:
        proc = self.tools.node_exec(self.control_plane, "cat", SETTINGS_MARKER, what="read settings", check=False)
        try:
            found = json.loads(proc.stdout) if proc.returncode == 0 else {}
        except ValueError:
            found = {}
        return found if isinstance(found, dict) else {}

    def up(self, *, keep: bool = True) -> ClusterHandle:
        """Create the cluster, or reuse the suite's own running one of the same name."""
        tools = self.tools
        exists = self._cluster_exists()
        if exists and not self._cluster_is_ours():
            raise ClusterError(
                f"a kind cluster named '{self.cluster_name}' exists and was not created by this suite: pass "
                "--cluster-name NAME for a cluster of its own, or test that one with --cluster=existing"
            )
        created_registries: list[str] = []
        created_cluster = False
        network_existed = self._network_exists()
        try:
            images = self._images()
            created_registries = registry.ensure(
                tools, self.cluster_name, self.registry_files, registry.image(tools, self.options.cache_dir)
            )
            if exists:
                progress(f"kind: reusing the running cluster '{self.cluster_name}'")
                write_private(
                    self.kubeconfig,
                    tools.kind_run("get", "kubeconfig", "--name", self.cluster_name, what="kind get kubeconfig").stdout,
                )
            else:
                created_cluster = True  # before the call: a failed create leaves node containers to delete
                self._create_cluster(images, keep)
            registry.connect(tools)
            for node, each in self._node_runtimes().items():
                registry.wire_node(tools, node, self.registry_files, each.runtime)
            kube = Kube(str(self.kubeconfig), self.context)
            kube.apply_config_map(
                "kube-public",
                "local-registry-hosting",
                {"localRegistryHosting.v1": cluster_config.local_registry_hosting()},
            )
            kube.wait_nodes_ready(self.nodes if not exists else 1, timeout=READY_TIMEOUT)
            kube.wait_for_service_account("default", timeout=SERVICE_ACCOUNT_TIMEOUT)
        except BaseException as exc:  # KeyboardInterrupt included: leave nothing half-made behind
            if created_cluster or created_registries:
                verb = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
                progress(f"kind: bring-up {verb}; removing what this run created")
                with shielded_from_ctrl_c():
                    try:
                        self._remove(
                            cluster=created_cluster, registry_names=created_registries, network=not network_existed
                        )
                    except ClusterError as cleanup_error:  # report, but keep the original failure as the error
                        progress(f"kind: cleanup incomplete: {cleanup_error}")
            raise
        return self._handle(created=created_cluster)

    def down(self) -> None:
        """Remove this suite's cluster and registries; "ours" is decided by marks, never by name alone."""
        exists = self._cluster_exists()
        cluster = exists and self._cluster_is_ours()
        if exists and not cluster:
            progress(f"kind: cluster '{self.cluster_name}' was not created by this suite; leaving it")
        names = [
            r.name for r in cluster_config.REGISTRY_CONTAINERS if registry.is_ours(self.tools, r, self.cluster_name)
        ]
        with shielded_from_ctrl_c():
            self._remove(cluster=cluster, registry_names=names, network=True)

    def status(self) -> str:
        lines = []
        if self._cluster_exists():
            owner_text = "created by ivc" if self._cluster_is_ours() else "not created by ivc"
            lines.append(
                f"kind cluster '{self.cluster_name}': running ({owner_text}); nodes {', '.join(self._nodes())}"
            )
        else:
            lines.append(f"kind cluster '{self.cluster_name}': absent")
        lines.append(f"  kubeconfig: {self.kubeconfig}{'' if self.kubeconfig.exists() else ' (not written)'}")
        for container in cluster_config.REGISTRY_CONTAINERS:
            found = registry.state(self.tools, container)
            where = f"on 127.0.0.1:{container.host_port}"
            lines.append(
                f"registry {container.name}: "
                + (f"{'running' if found.running else 'stopped'} {where}" if found else "absent")
            )
        return "\n".join(lines)

    def env(self) -> dict[str, str]:
        handle = self.running_handle()
        if handle is None:
            raise ClusterError(
                f"no usable kind cluster '{self.cluster_name}': `python -m conformance.cluster up --provider kind`"
            )
        return handle.exports()

    # --- parts --------------------------------------------------------------------------

    def _handle(self, *, created: bool) -> ClusterHandle:
        plain, auth = cluster_config.PLAIN_REGISTRY, cluster_config.AUTH_REGISTRY
        files = self.registry_files
        return ClusterHandle(
            provider=self.name,
            kubeconfig=str(self.kubeconfig),
            context=self.context,
            registry=RegistryEndpoint(push=plain.host, pull=plain.host),
            auth_registry=RegistryEndpoint(
                push=auth.host,
                pull=auth.in_network,
                username=registries.USER,
                password=files.password(),
                ca_file=str(files.ca),
            ),
            node_access=systemd_node_access(
                (self.tools.docker, "exec", "{node}"),
                restarts=True,
                collect=(self.tools.kind, "export", "logs", "--name", self.cluster_name, "{dir}"),
            ),
            created_by_run=created,
            description=(
                f"kind cluster '{self.cluster_name}', {len(self._nodes())} node(s) (node image(s) "
                f"{self._node_container_images()}); registries {plain.name} and {auth.name} (TLS + htpasswd)"
            ),
        )

    def _cluster_exists(self, *, detached: bool = False) -> bool:
        out = self.tools.kind_run("get", "clusters", what="list kind clusters", timeout=60, detached=detached).stdout
        return self.cluster_name in out.split()

    def _nodes(self) -> list[str]:
        out = self.tools.kind_run("get", "nodes", "--name", self.cluster_name, what="list kind nodes").stdout
        return out.split() or [self.control_plane]

    def node_names(self) -> list[str]:
        """kind's names for the nodes, in config order: the control-plane, then worker, worker2, …"""
        workers = [f"{self.cluster_name}-worker{'' if i == 1 else i}" for i in range(1, self.nodes)]
        return [self.control_plane, *workers]

    def _node_runtimes(self) -> dict[str, NodeRuntime]:
        return dict(zip(self.node_names(), self.node_runtimes, strict=True))

    def restart(self, component: str, node: str | None = None) -> None:
        """`systemctl restart` on each node (or `node`): what the handle's node access does for one node."""
        command = restart_commands()[component]
        for each in [node] if node else self._nodes():
            self.tools.node_exec(each, *command, what=f"restart the {component} on {each}")

    def _node_container_images(self) -> str:
        images = []
        for node in self._nodes():
            proc = self.tools.docker_run("inspect", "-f", "{{.Config.Image}}", node, what="inspect node", check=False)
            images.append(proc.stdout.strip() or "unknown")
        return ", ".join(dict.fromkeys(images))

    def _cluster_is_ours(self) -> bool:
        proc = self.tools.node_exec(self.control_plane, "cat", OWNER_MARKER, what="read owner mark", check=False)
        return proc.returncode == 0 and proc.stdout.startswith(MANAGED_BY)

    def _network_exists(self) -> bool:
        return (
            self.tools.docker_run(
                "network", "inspect", cluster_config.KIND_NETWORK, what="inspect the kind network", check=False
            ).returncode
            == 0
        )

    def cluster_config(self, images: dict[str, str]) -> str:
        """The kind config for these node images (per node when the nodes differ)."""
        admission_config = None
        if self.pod_security:
            path = write_atomic(
                self.directory / "admission.yaml", admission.render_admission_configuration(self.pod_security)
            )
            admission_config = str(path)
        nodes = [
            cluster_config.KindNode(role, each.cri_socket, images[each.label] if self.mixed else None)
            for role, each in zip(["control-plane"] + ["worker"] * (self.nodes - 1), self.node_runtimes, strict=True)
        ]
        return cluster_config.render_kind_config(
            self.k8s_version, nodes=nodes, feature_gates=self.feature_gates,
            admission_plugins=self.admission_plugins, admission_config=admission_config,
        )  # fmt: skip

    def _create_cluster(self, images: dict[str, str], keep: bool) -> None:
        config_file = write_private(self.directory / "kind-cluster_config.yaml", self.cluster_config(images))
        image = ", ".join(sorted(set(images.values())))
        progress(f"kind: creating cluster '{self.cluster_name}' ({self.nodes} nodes) on {image}")
        started = time.monotonic()
        one_image = [] if self.mixed else ["--image", image]
        self.tools.kind_run(
            "create", "cluster", "--name", self.cluster_name, *one_image, "--config", str(config_file),
            "--kubeconfig", str(self.kubeconfig), "--wait", f"{READY_TIMEOUT:.0f}s",
            what=f"kind create cluster '{self.cluster_name}'", timeout=READY_TIMEOUT + 600,
        )  # fmt: skip
        self.kubeconfig.chmod(0o600)
        marker = f"{MANAGED_BY} {owner()} {time.strftime('%Y-%m-%dT%H:%M:%S%z')}\n"
        self.tools.node_exec(
            self.control_plane, "sh", "-c", f"cat > {OWNER_MARKER}", what="mark the cluster as ours", input=marker
        )
        made = json.dumps({"settings": self.settings(), "keep": keep, "owner": this_process("run").to_dict()})
        self.tools.node_exec(
            self.control_plane, "sh", "-c", f"cat > {SETTINGS_MARKER}", what="record the settings", input=made
        )
        progress(f"kind: cluster '{self.cluster_name}' created in {time.monotonic() - started:.0f}s")

    def _remove(self, *, cluster: bool, registry_names: list[str], network: bool) -> None:
        tools = self.tools
        if cluster:
            progress(f"kind: deleting cluster '{self.cluster_name}'")
            tools.kind_run(
                "delete",
                "cluster",
                "--name",
                self.cluster_name,
                "--kubeconfig",
                str(self.kubeconfig),
                what=f"kind delete cluster '{self.cluster_name}'",
                timeout=300,
                detached=True,
            )
            # `kind delete cluster` succeeds even for a name it does not know: verify.
            if self._cluster_exists(detached=True):
                raise ClusterError(
                    f"kind cluster '{self.cluster_name}' still exists after deletion: "
                    f"remove it with `kind delete cluster --name {self.cluster_name}`"
                )
        registry.remove(tools, registry_names)
        if network and self._network_exists():
            attached = tools.docker_run(
                "network",
                "inspect",
                "-f",
                "{{len .Containers}}",
                cluster_config.KIND_NETWORK,
                what="inspect the kind network",
                check=False,
            ).stdout.strip()
            if attached == "0":  # nobody else's kind cluster uses it
                tools.docker_run(
                    "network", "rm", cluster_config.KIND_NETWORK, what="remove the kind network", check=False
                )
        if cluster:
            shutil.rmtree(self.directory, ignore_errors=True)
