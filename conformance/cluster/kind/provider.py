"""`KindProvider`: a kind cluster whose nodes run CRI-O, with a registry container wired into them.

The kubeconfig is private to the suite (never ~/.kube/config). What this provider creates carries
its marks (labels, the node's owner file), so `down` in any later process removes exactly that and
never a user's cluster of the same name.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import ClassVar

from conformance.cluster import api, gates
from conformance.cluster.contract import ClusterHandle, NodeAccess, RegistryEndpoint
from conformance.cluster.errors import ClusterError
from conformance.cluster.host import write_private
from conformance.cluster.kind import config, node_image, registry
from conformance.cluster.kind.marks import MANAGED_BY, OWNER_MARKER, owner
from conformance.cluster.kind.tools import Tools, find_tools, shielded_from_ctrl_c
from conformance.cluster.options import ClusterOptions
from conformance.cluster.progress import progress
from conformance.cluster.state import provider_dir

# Newest kindest/node tag of kind v0.32 (ecosystem-notes §2.1): Kubernetes 1.36, ImageVolume GA.
DEFAULT_K8S_VERSION = "v1.36.1"
DEFAULT_CRIO_VERSION = "v1.36.3"
SERVICE_ACCOUNT_TIMEOUT = 120.0


class KindProvider:
    name: ClassVar[str] = "kind"

    def __init__(self, options: ClusterOptions) -> None:
        """Without `--k8s-version`, the version comes from a `--node-image` tag like `:v1.35.4`, else the pin;
        it decides the gates, which are validated here, before anything slow happens."""
        self.cluster_name = config.validate_cluster_name(options.cluster_name or config.DEFAULT_CLUSTER_NAME)
        self.k8s_version = options.k8s_version or config.version_from_image(options.node_image) or DEFAULT_K8S_VERSION
        self.crio_version = options.crio_version or DEFAULT_CRIO_VERSION
        self.node_image = options.node_image or config.node_image_tag(self.k8s_version, self.crio_version)
        self.build_image = options.node_image is None
        self.feature_gates = dict(options.feature_gates)
        self.admission_plugins = options.admission_plugins
        gates.gates_for(self.k8s_version, self.feature_gates)
        self._tools: Tools | None = None

    @property
    def tools(self) -> Tools:
        if self._tools is None:
            self._tools = find_tools()
        return self._tools

    @property
    def node(self) -> str:
        return f"{self.cluster_name}-control-plane"

    @property
    def context(self) -> str:
        return f"kind-{self.cluster_name}"

    @property
    def kubeconfig(self) -> Path:
        return provider_dir(self.name) / self.cluster_name / "kubeconfig"

    # --- the contract -------------------------------------------------------------------

    def running_handle(self) -> ClusterHandle | None:
        """A running cluster of this name with its registry up and our kubeconfig written, else None.

        Its versions are whatever it runs: the suite discovers them instead of trusting --k8s-version.
        """
        if not self.kubeconfig.exists() or not self._cluster_exists():
            return None
        found = registry.state(self.tools)
        if found is None or not found.running or config.KIND_NETWORK not in found.networks:
            return None
        return self._handle(created=False)

    def up(self) -> ClusterHandle:
        """Create the cluster, or reuse a running one of the same name (then `down` leaves it alone)."""
        cluster_config = config.render_kind_config(
            self.k8s_version, feature_gates=self.feature_gates, admission_plugins=self.admission_plugins
        )
        tools = self.tools
        reused = self._cluster_exists()
        created_cluster = created_registry = False
        try:
            if reused:
                progress(f"kind: reusing the running cluster '{self.cluster_name}' (its own versions and gates apply)")
                write_private(
                    self.kubeconfig,
                    tools.kind_run("get", "kubeconfig", "--name", self.cluster_name, what="kind get kubeconfig").stdout,
                )
            else:
                node_image.ensure(
                    tools,
                    self.node_image,
                    k8s_version=self.k8s_version,
                    crio_version=self.crio_version,
                    build=self.build_image,
                )
            created_registry = registry.ensure(tools, self.cluster_name)
            if not reused:
                created_cluster = True  # before the call: a failed create leaves node containers to delete
                self._create_cluster(cluster_config)
            registry.connect(tools)
            for node in self._nodes():
                registry.wire_node(tools, node)
            api.apply_config_map(
                str(self.kubeconfig),
                self.context,
                "kube-public",
                "local-registry-hosting",
                {"localRegistryHosting.v1": config.local_registry_hosting()},
            )
            api.wait_default_service_account(str(self.kubeconfig), self.context, timeout=SERVICE_ACCOUNT_TIMEOUT)
        except BaseException as exc:  # KeyboardInterrupt included: leave nothing half-made behind
            if created_cluster or created_registry:
                verb = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
                progress(f"kind: bring-up {verb}; removing what this run created")
                with shielded_from_ctrl_c():
                    try:
                        self._remove(cluster=created_cluster, with_registry=created_registry)
                    except ClusterError as cleanup_error:  # report, but keep the original failure as the error
                        progress(f"kind: cleanup incomplete: {cleanup_error}")
            raise
        return self._handle(created=created_cluster)

    def down(self) -> None:
        """Remove this suite's cluster and registry; "ours" is decided by marks, never by name alone."""
        exists = self._cluster_exists()
        cluster = exists and self._cluster_is_ours()
        if exists and not cluster:
            progress(f"kind: cluster '{self.cluster_name}' was not created by this suite; leaving it")
        with shielded_from_ctrl_c():
            self._remove(cluster=cluster, with_registry=registry.is_ours(self.tools, self.cluster_name))

    def status(self) -> str:
        lines = []
        if self._cluster_exists():
            owner_text = "created by ivc" if self._cluster_is_ours() else "not created by ivc"
            lines.append(
                f"kind cluster '{self.cluster_name}': running ({owner_text}); nodes {', '.join(self._nodes())}, "
                f"image {self._node_container_image()}"
            )
            lines.append(f"  container runtime in node: {registry.node_runtime(self.tools, self.node)}")
        else:
            lines.append(f"kind cluster '{self.cluster_name}': absent")
        lines.append(f"  kubeconfig: {self.kubeconfig}{'' if self.kubeconfig.exists() else ' (not written)'}")
        found = registry.state(self.tools)
        where = f"on 127.0.0.1:{config.REGISTRY_HOST_PORT}"
        lines.append(
            f"registry {config.REGISTRY_NAME}: "
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
        return ClusterHandle(
            provider=self.name,
            kubeconfig=str(self.kubeconfig),
            context=self.context,
            registry=RegistryEndpoint(push=config.REGISTRY_HOST, pull=config.REGISTRY_HOST),
            auth_registry=None,
            node_access=NodeAccess(),
            created_by_run=created,
            description=(
                f"kind cluster '{self.cluster_name}' (node image {self._node_container_image()}); "
                f"registry {config.REGISTRY_NAME} on 127.0.0.1:{config.REGISTRY_HOST_PORT}"
            ),
        )

    def _cluster_exists(self, *, detached: bool = False) -> bool:
        out = self.tools.kind_run("get", "clusters", what="list kind clusters", timeout=60, detached=detached).stdout
        return self.cluster_name in out.split()

    def _nodes(self) -> list[str]:
        out = self.tools.kind_run("get", "nodes", "--name", self.cluster_name, what="list kind nodes").stdout
        return out.split() or [self.node]

    def _node_container_image(self) -> str:
        proc = self.tools.docker_run("inspect", "-f", "{{.Config.Image}}", self.node, what="inspect node", check=False)
        return proc.stdout.strip() or self.node_image

    def _cluster_is_ours(self) -> bool:
        proc = self.tools.node_exec(self.node, "cat", OWNER_MARKER, what="read owner mark", check=False)
        return proc.returncode == 0 and proc.stdout.startswith(MANAGED_BY)

    def _create_cluster(self, cluster_config: str) -> None:
        config_file = write_private(self.kubeconfig.with_name("kind-config.yaml"), cluster_config)
        progress(f"kind: creating cluster '{self.cluster_name}' on {self.node_image}")
        started = time.monotonic()
        self.tools.kind_run(
            "create",
            "cluster",
            "--name",
            self.cluster_name,
            "--image",
            self.node_image,
            "--config",
            str(config_file),
            "--kubeconfig",
            str(self.kubeconfig),
            "--wait",
            "5m",
            what=f"kind create cluster '{self.cluster_name}'",
            timeout=20 * 60,
        )
        self.kubeconfig.chmod(0o600)
        marker = f"{MANAGED_BY} {owner()} {time.strftime('%Y-%m-%dT%H:%M:%S%z')}\n"
        self.tools.node_exec(self.node, "sh", "-c", f"cat > {OWNER_MARKER}", what="mark node as ours", input=marker)
        progress(f"kind: cluster '{self.cluster_name}' ready in {time.monotonic() - started:.0f}s")

    def _remove(self, *, cluster: bool, with_registry: bool) -> None:
        if cluster:
            progress(f"kind: deleting cluster '{self.cluster_name}'")
            self.tools.kind_run(
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
            for leftover in (self.kubeconfig, self.kubeconfig.with_name("kind-config.yaml")):
                leftover.unlink(missing_ok=True)
        if with_registry:
            registry.remove(self.tools)
