"""`KindProvider`: a kind cluster whose nodes run CRI-O, with registry containers wired into them.

The node image is built here, offline (`node_image.py`); kind comes from PATH or is built from its
Go module. The kubeconfig is private to the suite (never ~/.kube/config). What this provider creates
carries its marks (labels, the node's owner file), so `down` in any later process removes exactly
that; a kind cluster of the same name that the suite did not create is refused, never touched.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import ClassVar

from conformance.cluster import api, gates, registries
from conformance.cluster.contract import ClusterHandle, NodeAccess, RegistryEndpoint
from conformance.cluster.errors import ClusterError
from conformance.cluster.host import write_private
from conformance.cluster.kind import config, node_image, registry
from conformance.cluster.kind.marks import MANAGED_BY, OWNER_MARKER, owner
from conformance.cluster.kind.tools import Tools, check_privileged, find_tools, shielded_from_ctrl_c
from conformance.cluster.options import ClusterOptions
from conformance.cluster.progress import progress
from conformance.cluster.runtimes import select
from conformance.cluster.state import provider_dir

DEFAULT_K8S_VERSION = "v1.36.3"
CRICTL_VERSION = "v1.36.0"
DEFAULT_NODES = 2  # one control-plane and one worker, as in the seed tutorial
READY_TIMEOUT = 300.0
SERVICE_ACCOUNT_TIMEOUT = 120.0


class KindProvider:
    name: ClassVar[str] = "kind"

    def __init__(self, options: ClusterOptions) -> None:
        """Without `--k8s-version`, the version comes from a `--node-image` tag like `:v1.35.4`, else the pin;
        it decides the gates, which are validated here, before anything slow happens."""
        self.cluster_name = config.validate_cluster_name(options.cluster_name or config.DEFAULT_CLUSTER_NAME)
        self.k8s_version = options.k8s_version or config.version_from_image(options.node_image) or DEFAULT_K8S_VERSION
        self.runtime = select(options.runtime)
        self.recipe = node_image.Recipe(
            k8s_version=self.k8s_version,
            runtime=self.runtime.name,
            runtime_version=options.runtime_version or self.runtime.default_version,
            crictl_version=CRICTL_VERSION,
            cache_dir=options.cache_dir,
        )
        self.prebuilt_image = options.node_image
        self.nodes = options.nodes or DEFAULT_NODES
        self.feature_gates = dict(options.feature_gates)
        self.admission_plugins = options.admission_plugins
        self.cluster_config = config.render_kind_config(
            self.k8s_version, nodes=self.nodes, feature_gates=self.feature_gates,
            admission_plugins=self.admission_plugins,
            cri_socket=f"unix://{self.runtime.socket(node_image.node_setup(self.runtime.name))}",
        )  # fmt: skip
        gates.gates_for(self.k8s_version, self.feature_gates)
        self._tools: Tools | None = None

    @property
    def tools(self) -> Tools:
        if self._tools is None:
            self._tools = find_tools(self.recipe.cache_dir)
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
        """Everything `up` needs that takes time, without starting a cluster: the node image."""
        image_tag = registry.image(self.tools, self.recipe.cache_dir)
        check_privileged(self.tools, image_tag)
        return self.prebuilt_image or node_image.ensure(self.tools, self.recipe)

    def running_handle(self) -> ClusterHandle | None:
        """Our cluster of this name, its registries up and on its network, our kubeconfig written; else None.

        Its versions are whatever it runs: the suite discovers them instead of trusting --k8s-version.
        """
        if not self.kubeconfig.exists() or not self._cluster_exists() or not self._cluster_is_ours():
            return None
        return self._handle(created=False) if registry.usable(self.tools) else None

    def up(self) -> ClusterHandle:
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
            image = self.prepare()
            created_registries = registry.ensure(
                tools, self.cluster_name, self.registry_files, registry.image(tools, self.recipe.cache_dir)
            )
            if exists:
                progress(f"kind: reusing the running cluster '{self.cluster_name}'")
                write_private(
                    self.kubeconfig,
                    tools.kind_run("get", "kubeconfig", "--name", self.cluster_name, what="kind get kubeconfig").stdout,
                )
            else:
                created_cluster = True  # before the call: a failed create leaves node containers to delete
                self._create_cluster(image)
            registry.connect(tools)
            for node in self._nodes():
                registry.wire_node(tools, node, self.registry_files, self.runtime)
            api.apply_config_map(
                str(self.kubeconfig),
                self.context,
                "kube-public",
                "local-registry-hosting",
                {"localRegistryHosting.v1": config.local_registry_hosting()},
            )
            api.wait_nodes_ready(
                str(self.kubeconfig), self.context, count=self.nodes if not exists else 1, timeout=READY_TIMEOUT
            )
            api.wait_default_service_account(str(self.kubeconfig), self.context, timeout=SERVICE_ACCOUNT_TIMEOUT)
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
        names = [r.name for r in config.REGISTRY_CONTAINERS if registry.is_ours(self.tools, r, self.cluster_name)]
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
        for container in config.REGISTRY_CONTAINERS:
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
        plain, auth = config.PLAIN_REGISTRY, config.AUTH_REGISTRY
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
            node_access=NodeAccess(
                command=(self.tools.docker, "exec", "{node}"),
                crictl="crictl",
                logs={
                    "crio": ("journalctl", "--no-pager", "-o", "short-iso", "-u", "crio"),
                    "kubelet": ("journalctl", "--no-pager", "-o", "short-iso", "-u", "kubelet"),
                },
                collect=(self.tools.kind, "export", "logs", "--name", self.cluster_name, "{dir}"),
            ),
            created_by_run=created,
            description=(
                f"kind cluster '{self.cluster_name}', {len(self._nodes())} node(s) (node image "
                f"{self._node_container_image()}); registries {plain.name} and {auth.name} (TLS + htpasswd)"
            ),
        )

    def _cluster_exists(self, *, detached: bool = False) -> bool:
        out = self.tools.kind_run("get", "clusters", what="list kind clusters", timeout=60, detached=detached).stdout
        return self.cluster_name in out.split()

    def _nodes(self) -> list[str]:
        out = self.tools.kind_run("get", "nodes", "--name", self.cluster_name, what="list kind nodes").stdout
        return out.split() or [self.control_plane]

    def _node_container_image(self) -> str:
        proc = self.tools.docker_run(
            "inspect", "-f", "{{.Config.Image}}", self.control_plane, what="inspect node", check=False
        )
        return proc.stdout.strip() or "unknown"

    def _cluster_is_ours(self) -> bool:
        proc = self.tools.node_exec(self.control_plane, "cat", OWNER_MARKER, what="read owner mark", check=False)
        return proc.returncode == 0 and proc.stdout.startswith(MANAGED_BY)

    def _network_exists(self) -> bool:
        return (
            self.tools.docker_run(
                "network", "inspect", config.KIND_NETWORK, what="inspect the kind network", check=False
            ).returncode
            == 0
        )

    def _create_cluster(self, image: str) -> None:
        config_file = write_private(self.directory / "kind-config.yaml", self.cluster_config)
        progress(f"kind: creating cluster '{self.cluster_name}' ({self.nodes} nodes) on {image}")
        started = time.monotonic()
        self.tools.kind_run(
            "create", "cluster", "--name", self.cluster_name, "--image", image, "--config", str(config_file),
            "--kubeconfig", str(self.kubeconfig), "--wait", f"{READY_TIMEOUT:.0f}s",
            what=f"kind create cluster '{self.cluster_name}'", timeout=READY_TIMEOUT + 600,
        )  # fmt: skip
        self.kubeconfig.chmod(0o600)
        marker = f"{MANAGED_BY} {owner()} {time.strftime('%Y-%m-%dT%H:%M:%S%z')}\n"
        self.tools.node_exec(
            self.control_plane, "sh", "-c", f"cat > {OWNER_MARKER}", what="mark the cluster as ours", input=marker
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
                config.KIND_NETWORK,
                what="inspect the kind network",
                check=False,
            ).stdout.strip()
            if attached == "0":  # nobody else's kind cluster uses it
                tools.docker_run("network", "rm", config.KIND_NETWORK, what="remove the kind network", check=False)
        if cluster:
            shutil.rmtree(self.directory, ignore_errors=True)
