"""A kind cluster whose node runs CRI-O, with a local registry: the default for machines with Docker and internet.

Stock kind nodes run containerd, which mounts no OCI artifacts, so we layer CRI-O onto a published
`kindest/node` image (kind/node-crio.Dockerfile). kind calls that "possible, not supported", so every
step here is explicit and checked. `docker` and `kind` come from PATH, never downloaded: pinned,
self-downloaded binaries were the main failure source of earlier pytest kind plugins.

The kubeconfig is private to the suite (never ~/.kube/config). Test artifacts reach the node only
through the `ivc-registry` container: `kind load docker-image` imports into containerd, which CRI-O
never reads.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from conformance.cluster.base import ClusterHandle, NodeAccess, RegistryEndpoint
from conformance.cluster.errors import ClusterError
from conformance.cluster.progress import progress

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

# Newest kindest/node tag of kind v0.32 (ecosystem-notes §2.1): Kubernetes 1.36, ImageVolume GA.
DEFAULT_K8S_VERSION = "v1.36.1"
DEFAULT_CLUSTER_NAME = "ivc"
MIN_KIND_VERSION = (0, 27, 0)
# The kind release the default node image was built for; older kind may not drive it.
DEFAULT_IMAGE_KIND_VERSION = (0, 32, 0)

NODE_IMAGE_REPO = "ivc/kind-node-crio"
CRIO_SOCKET = "unix:///var/run/crio/crio.sock"
IMAGE_VOLUME_MIN = (1, 31)  # VolumeSource.Image exists from 1.31 (alpha)
IMAGE_VOLUME_LOCKED = (1, 36)  # GA and LockToDefault from 1.36 (feature-facts §1)

REGISTRY_NAME = "ivc-registry"
REGISTRY_IMAGE = "registry:2"
REGISTRY_HOST_PORT = 5001
REGISTRY_HOST = f"localhost:{REGISTRY_HOST_PORT}"  # what this process pushes to and Pods reference
REGISTRY_IN_NETWORK = f"{REGISTRY_NAME}:5000"  # what the node's runtime actually dials
REGISTRIES_DROP_IN = "/etc/containers/registries.conf.d/50-ivc-registry.conf"
KIND_NETWORK = "kind"

LABEL_MANAGED_BY = "io.ivc.managed-by"
LABEL_CLUSTER = "io.ivc.cluster"
LABEL_OWNER = "io.ivc.owner"
MANAGED_BY = "ivc-conformance"
# Written into the node after `kind create`: lets a later process (`python -m conformance.cluster down`)
# tell a cluster this suite created from a user's own cluster of the same name.
OWNER_MARKER = "/kind/ivc-owner"

KIND_DIR = Path(__file__).resolve().parents[2] / "kind"
DOCKERFILE = KIND_DIR / "node-crio.Dockerfile"

KIND_INSTALL_HINT = "install kind ≥0.27 (https://kind.sigs.k8s.io/docs/user/quick-start/#installation)"
ALTERNATIVES = "or use --cluster=local/existing"


# ---------------------------------------------------------------------------------------------
# Pure parts: versions, names and the kind config (unit-tested in tests/test_kind_config.py)


def normalize_k8s_version(version: str) -> str:
    """`1.36.1` → `v1.36.1`: kindest/node tags carry the `v`."""
    version = version.strip()
    if not re.fullmatch(r"v?\d+\.\d+\.\d+(?:-[0-9A-Za-z.]+)?", version):
        raise ClusterError(f"Kubernetes version {version!r} is not a release like v1.36.1 (a kindest/node tag)")
    return version if version.startswith("v") else f"v{version}"


def k8s_minor(version: str) -> tuple[int, int]:
    major, minor = normalize_k8s_version(version)[1:].split(".")[:2]
    return int(major), int(minor)


def crio_stream(crio_version: str | None, k8s_version: str) -> str:
    """The OBS stream `v1.XX` to install; CRI-O follows Kubernetes minors, so it defaults to the same one."""
    if crio_version is None:
        major, minor = k8s_minor(k8s_version)
        return f"v{major}.{minor}"
    match = re.fullmatch(r"v?(\d+)\.(\d+)", crio_version.strip())
    if not match:
        raise ClusterError(
            f"CRI-O version {crio_version!r} is not a minor stream like v1.36: "
            "the isv:cri-o:stable:v1.XX repository always serves the newest patch of a minor"
        )
    return f"v{match[1]}.{match[2]}"


def node_image_tag(k8s_version: str, crio_version: str | None = None) -> str:
    """`ivc/kind-node-crio:v1.36.1-crio1.36`: one locally built image per (Kubernetes, CRI-O) pair."""
    return f"{NODE_IMAGE_REPO}:{normalize_k8s_version(k8s_version)}-crio{crio_stream(crio_version, k8s_version)[1:]}"


def feature_gates_for(k8s_version: str, requested: Mapping[str, bool] | None = None) -> dict[str, bool]:
    """Gates to put in the kind config: ImageVolume only where it is not on by default yet.

    From 1.36 the gate is locked on: `false` is rejected by every component and `true` is dropped,
    because passing a removed gate (expected ≈1.38) makes components exit with "unrecognized feature gate".
    """
    version = k8s_minor(k8s_version)
    if version < IMAGE_VOLUME_MIN:
        raise ClusterError(f"Kubernetes {k8s_version} has no image volumes: pick --k8s-version v1.31 or newer")
    gates: dict[str, bool] = {} if version >= IMAGE_VOLUME_LOCKED else {"ImageVolume": True}
    for gate, enabled in (requested or {}).items():
        if gate == "ImageVolume" and version >= IMAGE_VOLUME_LOCKED:
            if not enabled:
                raise ClusterError(
                    f"ImageVolume is GA and locked on in Kubernetes {k8s_version}: "
                    "to test the gate off, pick --k8s-version v1.35.x or older"
                )
            continue
        gates[gate] = bool(enabled)
    return gates


class _LiteralDumper(yaml.SafeDumper):
    """Multi-line strings (the kubeadm patches) as `|` blocks, the way kind's docs write them."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_LiteralDumper.add_representer(str, _represent_str)


def _patch(document: dict[str, object]) -> str:
    # No apiVersion: kind then applies the patch to whatever kubeadm API version the node uses.
    return yaml.safe_dump(document, sort_keys=False)


def render_kind_config(
    k8s_version: str,
    *,
    feature_gates: Mapping[str, bool] | None = None,
    admission_plugins: Sequence[str] = (),
) -> str:
    """The kind cluster config for one CRI-O control-plane node (pure; the node image is passed separately)."""
    version = normalize_k8s_version(k8s_version)
    config: dict[str, object] = {"kind": "Cluster", "apiVersion": "kind.x-k8s.io/v1alpha4"}
    gates = feature_gates_for(version, feature_gates)
    if gates:
        config["featureGates"] = gates
    # 1.35 made cgroup v1 hosts fatal for the kubelet; false is harmless on cgroup v2 hosts.
    cluster_patches = [_patch({"kind": "KubeletConfiguration", "failCgroupV1": False})]
    if admission_plugins:
        plugins = list(dict.fromkeys(["NodeRestriction", *admission_plugins]))  # keep kubeadm's default
        cluster_patches.append(
            _patch(
                {
                    "kind": "ClusterConfiguration",
                    "apiServer": {"extraArgs": {"enable-admission-plugins": ",".join(plugins)}},
                }
            )
        )
    config["kubeadmConfigPatches"] = cluster_patches
    # kind's kubeadm template hard-codes containerd's socket; a joining worker would need the Join patch too.
    config["nodes"] = [
        {
            "role": "control-plane",
            "kubeadmConfigPatches": [
                _patch({"kind": kind, "nodeRegistration": {"criSocket": CRIO_SOCKET}})
                for kind in ("InitConfiguration", "JoinConfiguration")
            ],
        }
    ]
    header = (
        f"# kind cluster on CRI-O for Kubernetes {version}, rendered by conformance.cluster.kind.render_kind_config.\n"
        f"# Use with the node image {node_image_tag(version)} (kind/node-crio.Dockerfile).\n"
    )
    return header + yaml.dump(config, Dumper=_LiteralDumper, sort_keys=False, default_flow_style=False)


def registries_drop_in() -> str:
    """containers-registries.conf(5) drop-in: Pods say localhost:5001, CRI-O dials the registry container."""
    return (
        "# Written by the ivc conformance suite: localhost inside the node is not the host's localhost.\n"
        "[[registry]]\n"
        f'prefix = "{REGISTRY_HOST}"\n'
        f'location = "{REGISTRY_IN_NETWORK}"\n'
        "insecure = true\n"
    )


def containerd_hosts_toml() -> str:
    """The same redirect for stock containerd nodes (kind's documented pattern), used when reusing one."""
    return f'[host."http://{REGISTRY_IN_NETWORK}"]\n'


def local_registry_hosting() -> str:
    """KEP-1755 `localRegistryHosting.v1` document, so tools can discover the registry."""
    return (
        f'host: "{REGISTRY_HOST}"\n'
        f'hostFromClusterNetwork: "{REGISTRY_IN_NETWORK}"\n'
        'help: "https://kind.sigs.k8s.io/docs/user/local-registry/"\n'
    )


def parse_tool_version(text: str) -> tuple[int, int, int] | None:
    match = re.search(r"v?(\d+)\.(\d+)\.(\d+)", text)
    return (int(match[1]), int(match[2]), int(match[3])) if match else None


def _version_from_image(image: str | None) -> str | None:
    match = re.search(r":(v\d+\.\d+\.\d+)", image or "")
    return match[1] if match else None


def default_kubeconfig_path(cluster_name: str) -> Path:
    # Imported here: conformance.cluster imports this module lazily, never the other way round at import time.
    from conformance.cluster import state_dir

    return state_dir() / "kind" / cluster_name / "kubeconfig"


# ---------------------------------------------------------------------------------------------
# Process helpers


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _last_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1] if lines else "no output"


@contextlib.contextmanager
def _shielded_from_ctrl_c() -> Iterator[None]:
    """Cleanup must finish even if the user presses Ctrl-C again."""
    try:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread: nothing to shield
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class KindProvider:
    """kind + CRI-O + `ivc-registry`. `down()` removes only what this suite created (see `down`)."""

    name = "kind"

    def __init__(
        self,
        *,
        cluster_name: str = DEFAULT_CLUSTER_NAME,
        k8s_version: str | None = None,
        crio_version: str | None = None,
        node_image: str | None = None,
        feature_gates: Mapping[str, bool] | str | None = None,
        admission_plugins: Sequence[str] | str = (),
    ) -> None:
        """Options as the CLI and the pytest plugin pass them; gates and plugins may be the flag strings
        (`ImageVolume=false,Foo=true`, `AlwaysPullImages`). The kubeconfig is always the suite's private
        file: accepting a path here could overwrite a user's ~/.kube/config. Without `k8s_version`, the version
        comes from a `--node-image` tag like `:v1.35.4`, else DEFAULT_K8S_VERSION; it decides the gates."""
        if not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", cluster_name):
            raise ClusterError(f"kind cluster name {cluster_name!r} must be lowercase letters, digits and '-'")
        self.cluster_name = cluster_name
        self.k8s_version = normalize_k8s_version(k8s_version or _version_from_image(node_image) or DEFAULT_K8S_VERSION)
        self.crio_version = crio_stream(crio_version, self.k8s_version)
        self.node_image = node_image or node_image_tag(self.k8s_version, self.crio_version)
        self.build_image = node_image is None
        if isinstance(feature_gates, str):
            from conformance.cluster import parse_feature_gates

            feature_gates = parse_feature_gates(feature_gates)
        self.feature_gates = dict(feature_gates or {})
        if isinstance(admission_plugins, str):
            admission_plugins = [p.strip() for p in admission_plugins.split(",") if p.strip()]
        self.admission_plugins = tuple(admission_plugins)
        self._docker = ""
        self._kind = ""
        self._up_called = False
        self._created_cluster = False
        self._created_registry = False

    # -- public API ---------------------------------------------------------------------------

    @property
    def node(self) -> str:
        return f"{self.cluster_name}-control-plane"

    @property
    def context(self) -> str:
        return f"kind-{self.cluster_name}"

    @property
    def kubeconfig(self) -> Path:
        return default_kubeconfig_path(self.cluster_name)

    def running_handle(self) -> ClusterHandle | None:
        """The handle of a running cluster of this name (from an earlier `up` or --keep-cluster), else None.

        Reusing still (re)wires the registry, idempotently, so a hand-made cluster (even stock kind
        from kind/cluster-containerd.yaml) becomes usable. Its versions are whatever it runs: the
        suite discovers them instead of trusting --k8s-version.
        """
        self._find_tools()
        if not self._cluster_exists():
            return None
        return self.up()

    def up(self) -> ClusterHandle:
        """Create the cluster, or reuse a running one of the same name (then `down` leaves it alone)."""
        self._up_called = True
        # Validate the config before anything slow happens (bad versions and gates fail here).
        config = render_kind_config(
            self.k8s_version, feature_gates=self.feature_gates, admission_plugins=self.admission_plugins
        )
        self._find_tools()
        reused = self._cluster_exists()
        try:
            if reused:
                progress(f"kind: reusing the running cluster '{self.cluster_name}' (its own versions and gates apply)")
                self._write_kubeconfig()
            else:
                self._ensure_node_image()
            self._ensure_registry()
            if not reused:
                self._create_cluster(config)
            self._connect_registry()
            for node in self._nodes():
                self._configure_node_registry(node)
            self._publish_registry()
            self._wait_for_default_service_account()
        except BaseException as exc:  # KeyboardInterrupt included: leave nothing half-made behind
            if self._created_cluster or self._created_registry:
                progress(
                    f"kind: bring-up {'interrupted' if isinstance(exc, KeyboardInterrupt) else 'failed'}; "
                    "removing what this run created"
                )
                with _shielded_from_ctrl_c():
                    try:
                        self._remove(cluster=self._created_cluster, registry=self._created_registry)
                    except ClusterError as cleanup_error:  # report, but keep the original failure as the error
                        progress(f"kind: cleanup incomplete: {cleanup_error}")
                self._created_cluster = self._created_registry = False
            raise
        image = self._node_container_image() if reused else self.node_image
        return ClusterHandle(
            provider=self.name,
            kubeconfig=str(self.kubeconfig),
            context=self.context,
            registry=RegistryEndpoint(push=REGISTRY_HOST, pull=REGISTRY_HOST),
            auth_registry=None,
            node_access=NodeAccess(),
            created_by_run=self._created_cluster,
            description=(
                f"kind cluster '{self.cluster_name}' (node image {image}); "
                f"registry {REGISTRY_NAME} on 127.0.0.1:{REGISTRY_HOST_PORT}"
            ),
        )

    def down(self) -> None:
        """Remove what `up` created in this process; in a fresh process, remove ivc's cluster and registry.

        "Ours" is decided by marks, never by name alone: the node's OWNER_MARKER file and the
        registry container's labels. A reused (or user-made) cluster is left in place.
        """
        if self._up_called:
            if not (self._created_cluster or self._created_registry):
                return
            cluster, registry = self._created_cluster, self._created_registry
        else:
            self._find_tools()
            exists = self._cluster_exists()
            cluster = exists and self._cluster_is_ours()
            if exists and not cluster:
                progress(f"kind: cluster '{self.cluster_name}' was not created by this suite; leaving it")
            registry = self._registry_is_ours()
        with _shielded_from_ctrl_c():
            self._remove(cluster=cluster, registry=registry)
        self._created_cluster = self._created_registry = False

    def status(self) -> str:
        self._find_tools()
        lines = []
        if self._cluster_exists():
            owner = "created by ivc" if self._cluster_is_ours() else "not created by ivc"
            lines.append(
                f"kind cluster '{self.cluster_name}': running ({owner}); node {self.node}, "
                f"image {self._node_container_image()}"
            )
            runtime = self._node_runtime(self.node)
            lines.append(f"  container runtime in node: {runtime}")
        else:
            lines.append(f"kind cluster '{self.cluster_name}': absent")
        lines.append(f"  kubeconfig: {self.kubeconfig}{'' if self.kubeconfig.exists() else ' (not written)'}")
        state = self._registry_state()
        lines.append(
            f"registry {REGISTRY_NAME}: "
            + (
                f"{'running' if state['running'] else 'stopped'} on 127.0.0.1:{REGISTRY_HOST_PORT}"
                if state
                else "absent"
            )
        )
        return "\n".join(lines)

    # -- tools ----------------------------------------------------------------------------------

    def _find_tools(self) -> None:
        if self._docker and self._kind:
            return
        provider = os.environ.get("KIND_EXPERIMENTAL_PROVIDER", "docker")
        if provider != "docker":
            raise ClusterError(
                f"KIND_EXPERIMENTAL_PROVIDER={provider} is not supported: the kind provider drives docker; "
                f"unset it {ALTERNATIVES}"
            )
        kind = shutil.which("kind")
        if not kind:
            raise ClusterError(f"kind not found on PATH: {KIND_INSTALL_HINT} {ALTERNATIVES}")
        docker = shutil.which("docker")
        if not docker:
            raise ClusterError(
                f"docker not found on PATH: install Docker (https://docs.docker.com/engine/install/) {ALTERNATIVES}"
            )
        version_text = self._run([kind, "version"], what="kind version", timeout=30).stdout
        version = parse_tool_version(version_text)
        if version is None or version < MIN_KIND_VERSION:
            raise ClusterError(f"{version_text.strip() or 'kind'} is too old: {KIND_INSTALL_HINT}")
        if version < DEFAULT_IMAGE_KIND_VERSION and self.k8s_version == DEFAULT_K8S_VERSION:
            progress(
                f"kind: {version_text.strip()} predates the v0.32 that built kindest/node:{DEFAULT_K8S_VERSION}; "
                "upgrade kind if cluster creation fails"
            )
        try:
            probe = subprocess.run(
                [docker, "version", "--format", "{{.Server.Version}}"], capture_output=True, text=True, timeout=30
            )
            reason = _last_line(probe.stderr) if probe.returncode != 0 else ""
        except subprocess.TimeoutExpired:
            reason = "no answer within 30s"
        if reason:
            raise ClusterError(
                f"docker daemon is not reachable ({reason}): start Docker or check DOCKER_HOST, {ALTERNATIVES}"
            )
        self._docker, self._kind = docker, kind  # only once both tools answered

    def _run(
        self,
        cmd: Sequence[str],
        *,
        what: str,
        timeout: float | None = 120,
        input: str | None = None,
        check: bool = True,
        detached: bool = False,
    ) -> subprocess.CompletedProcess[str]:
        """Run a tool; on failure raise one actionable line plus the tool's last lines of output.

        `detached` runs it in its own session so a Ctrl-C at the terminal does not kill cleanup.
        """
        try:
            proc = subprocess.run(
                list(cmd), input=input, capture_output=True, text=True, timeout=timeout, start_new_session=detached
            )
        except subprocess.TimeoutExpired as exc:
            raise ClusterError(f"{what} timed out after {timeout:.0f}s: `{' '.join(cmd)}`") from exc
        if check and proc.returncode != 0:
            output = proc.stderr.strip() or proc.stdout.strip()
            raise ClusterError(
                f"{what} failed: `{' '.join(cmd)}` exited {proc.returncode}: {_last_line(output)}\n{_tail(output)}"
            )
        return proc

    def _docker_exec(
        self, node: str, *args: str, what: str, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        interactive = ["-i"] if input is not None else []  # -i forwards stdin (file contents) into the node
        return self._run([self._docker, "exec", *interactive, node, *args], what=what, input=input)

    # -- cluster --------------------------------------------------------------------------------

    def _cluster_exists(self, *, detached: bool = False) -> bool:
        out = self._run(
            [self._kind, "get", "clusters"], what="list kind clusters", timeout=60, detached=detached
        ).stdout
        return self.cluster_name in out.split()

    def _nodes(self) -> list[str]:
        out = self._run([self._kind, "get", "nodes", "--name", self.cluster_name], what="list kind nodes").stdout
        return out.split() or [self.node]

    def _node_container_image(self) -> str:
        proc = self._run(
            [self._docker, "inspect", "-f", "{{.Config.Image}}", self.node], what="inspect node", check=False
        )
        return proc.stdout.strip() or "unknown"

    def _cluster_is_ours(self) -> bool:
        proc = self._run([self._docker, "exec", self.node, "cat", OWNER_MARKER], what="read owner mark", check=False)
        return proc.returncode == 0 and proc.stdout.startswith(MANAGED_BY)

    def _node_runtime(self, node: str) -> str:
        # The socket, not the image name, says which runtime kubelet talks to (a reused cluster may be stock kind).
        proc = self._run(
            [self._docker, "exec", node, "test", "-S", "/var/run/crio/crio.sock"], what="detect runtime", check=False
        )
        return "cri-o" if proc.returncode == 0 else "containerd"

    def _ensure_node_image(self) -> None:
        inspect = [self._docker, "image", "inspect", "--format", "{{.Id}}", self.node_image]
        if self._run(inspect, what="inspect node image", check=False).returncode == 0:
            progress(f"kind: node image {self.node_image} present")
            return
        if not self.build_image:
            progress(f"kind: node image {self.node_image} not present locally; kind will pull it")
            return
        if not DOCKERFILE.exists():
            raise ClusterError(f"{DOCKERFILE} is missing: run from a checkout of the suite, or pass --node-image")
        progress(
            f"kind: building {self.node_image} from kindest/node:{self.k8s_version} + CRI-O {self.crio_version} "
            "(a few minutes, once)"
        )
        started = time.monotonic()
        self._run(
            [
                self._docker,
                "build",
                "--build-arg",
                f"KIND_NODE_IMAGE=kindest/node:{self.k8s_version}",
                "--build-arg",
                f"CRIO_VERSION={self.crio_version}",
                "--label",
                f"{LABEL_MANAGED_BY}={MANAGED_BY}",
                "-t",
                self.node_image,
                "-f",
                str(DOCKERFILE),
                str(KIND_DIR),
            ],
            what=f"build node image {self.node_image}",
            timeout=45 * 60,
        )
        if self._run(inspect, what="inspect node image", check=False).returncode != 0:
            raise ClusterError(
                f"docker build did not load {self.node_image} into the image store: "
                "switch to the default builder (`docker buildx use default`) and retry"
            )
        progress(f"kind: node image built in {time.monotonic() - started:.0f}s")

    def _create_cluster(self, config: str) -> None:
        self.kubeconfig.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        config_file = self.kubeconfig.parent / "kind-config.yaml"
        config_file.write_text(config)
        progress(
            f"kind: creating cluster '{self.cluster_name}' on {self.node_image} "
            "(CRI-O pulls the control-plane images: a few minutes)"
        )
        started = time.monotonic()
        # Set before the call: a failed or interrupted create leaves node containers to delete.
        self._created_cluster = True
        self._run(
            [
                self._kind,
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
            ],
            what=f"kind create cluster '{self.cluster_name}'",
            timeout=20 * 60,
        )
        self.kubeconfig.chmod(0o600)
        marker = f"{MANAGED_BY} {_owner()} {time.strftime('%Y-%m-%dT%H:%M:%S%z')}\n"
        self._docker_exec(self.node, "sh", "-c", f"cat > {OWNER_MARKER}", what="mark node as ours", input=marker)
        progress(f"kind: cluster '{self.cluster_name}' ready in {time.monotonic() - started:.0f}s")

    def _write_kubeconfig(self) -> None:
        text = self._run(
            [self._kind, "get", "kubeconfig", "--name", self.cluster_name], what="kind get kubeconfig"
        ).stdout
        self.kubeconfig.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.kubeconfig, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)

    # -- registry -------------------------------------------------------------------------------

    def _registry_state(self) -> dict[str, object] | None:
        proc = self._run(
            [self._docker, "inspect", "--type", "container", REGISTRY_NAME], what="inspect registry", check=False
        )
        if proc.returncode != 0:
            return None
        info = json.loads(proc.stdout)[0]
        return {
            "running": bool(info.get("State", {}).get("Running")),
            "labels": info.get("Config", {}).get("Labels") or {},
            "networks": info.get("NetworkSettings", {}).get("Networks") or {},
        }

    def _registry_is_ours(self) -> bool:
        state = self._registry_state()
        labels = state["labels"] if state else {}
        return (
            bool(state)
            and labels.get(LABEL_MANAGED_BY) == MANAGED_BY
            and labels.get(LABEL_CLUSTER) == self.cluster_name
        )

    def _ensure_registry(self) -> None:
        state = self._registry_state()
        if state and state["running"]:
            progress(f"kind: registry {REGISTRY_NAME} already running")
            return
        if state:
            self._run([self._docker, "start", REGISTRY_NAME], what=f"start registry {REGISTRY_NAME}")
            return
        progress(f"kind: starting registry {REGISTRY_NAME} on 127.0.0.1:{REGISTRY_HOST_PORT}")
        self._created_registry = True
        proc = self._run(
            [
                self._docker,
                "run",
                "-d",
                "--restart=always",
                "-p",
                f"127.0.0.1:{REGISTRY_HOST_PORT}:5000",
                "--network",
                "bridge",
                "--name",
                REGISTRY_NAME,
                "--label",
                f"{LABEL_MANAGED_BY}={MANAGED_BY}",
                "--label",
                f"{LABEL_CLUSTER}={self.cluster_name}",
                "--label",
                f"{LABEL_OWNER}={_owner()}",
                "-e",
                "REGISTRY_STORAGE_DELETE_ENABLED=true",
                REGISTRY_IMAGE,
            ],
            what=f"start registry {REGISTRY_NAME}",
            check=False,
        )
        if proc.returncode != 0:
            reason = _last_line(proc.stderr)
            hint = (
                f"free 127.0.0.1:{REGISTRY_HOST_PORT} (see `docker ps --filter publish={REGISTRY_HOST_PORT}`)"
                if "allocated" in reason or "in use" in reason
                else f"check that docker can pull {REGISTRY_IMAGE}"
            )
            raise ClusterError(f"registry container {REGISTRY_NAME} did not start ({reason}): {hint}")

    def _connect_registry(self) -> None:
        state = self._registry_state()
        if state and KIND_NETWORK not in state["networks"]:
            self._run(
                [self._docker, "network", "connect", KIND_NETWORK, REGISTRY_NAME],
                what=f"connect {REGISTRY_NAME} to the kind network",
            )

    def _configure_node_registry(self, node: str) -> None:
        if self._node_runtime(node) == "cri-o":
            self._docker_exec(
                node,
                "sh",
                "-c",
                f"mkdir -p {Path(REGISTRIES_DROP_IN).parent} && cat > {REGISTRIES_DROP_IN}",
                what=f"write {REGISTRIES_DROP_IN} in {node}",
                input=registries_drop_in(),
            )
            # crio.conf(5): SIGHUP reloads registries.conf; the unit's ExecReload sends it.
            self._docker_exec(node, "systemctl", "reload", "crio", what=f"reload CRI-O in {node}")
        else:
            directory = f"/etc/containerd/certs.d/{REGISTRY_HOST}"
            self._docker_exec(
                node,
                "sh",
                "-c",
                f"mkdir -p '{directory}' && cat > '{directory}/hosts.toml'",
                what=f"write containerd hosts.toml in {node}",
                input=containerd_hosts_toml(),
            )

    def _api(self) -> ApiClient:
        # kubernetes is imported lazily: `--help` and unit tests stay fast.
        from kubernetes import client, config

        configuration = client.Configuration()
        configuration.retries = 1
        return config.new_client_from_config(
            config_file=str(self.kubeconfig),
            context=self.context,
            persist_config=False,
            client_configuration=configuration,
        )

    def _publish_registry(self) -> None:
        from kubernetes import client

        body = client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name="local-registry-hosting", namespace="kube-public"),
            data={"localRegistryHosting.v1": local_registry_hosting()},
        )
        what = "cannot publish ConfigMap kube-public/local-registry-hosting"
        with self._api() as api:
            core = client.CoreV1Api(api)
            try:
                try:
                    core.create_namespaced_config_map("kube-public", body, _request_timeout=30)
                except client.ApiException as exc:
                    if exc.status != 409:
                        raise
                    core.replace_namespaced_config_map(
                        "local-registry-hosting", "kube-public", body, _request_timeout=30
                    )
            except client.ApiException as exc:
                raise ClusterError(f"{what}: HTTP {exc.status} {exc.reason}") from exc
            except Exception as exc:  # connection errors: the API of the new cluster is not answering
                raise ClusterError(
                    f"{what}: the API server is not answering ({type(exc).__name__}); "
                    f"see `kind export logs --name {self.cluster_name}`"
                ) from exc

    def _wait_for_default_service_account(self, timeout: float = 120) -> None:
        """Pods are rejected until the controller-manager made `default/default`; wait so the first test is not."""
        from kubernetes import client
        from tenacity import RetryError, Retrying, stop_after_delay, wait_fixed

        with self._api() as api:
            core = client.CoreV1Api(api)
            # Any error (404 until it exists, connection errors while the apiserver settles) means "not yet".
            retrying = Retrying(stop=stop_after_delay(timeout), wait=wait_fixed(2))
            try:
                retrying(core.read_namespaced_service_account, "default", "default", _request_timeout=10)
            except RetryError as exc:
                last = exc.last_attempt.exception()
                raise ClusterError(
                    f"ServiceAccount default/default did not appear within {timeout:.0f}s "
                    f"(last: {type(last).__name__} {getattr(last, 'status', '')}); "
                    f"see `kind export logs --name {self.cluster_name}`"
                ) from None

    # -- removal --------------------------------------------------------------------------------

    def _remove(self, *, cluster: bool, registry: bool) -> None:
        if cluster:
            progress(f"kind: deleting cluster '{self.cluster_name}'")
            self._run(
                [self._kind, "delete", "cluster", "--name", self.cluster_name, "--kubeconfig", str(self.kubeconfig)],
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
            for leftover in (self.kubeconfig, self.kubeconfig.parent / "kind-config.yaml"):
                leftover.unlink(missing_ok=True)
        if registry:
            progress(f"kind: removing registry {REGISTRY_NAME}")
            self._run([self._docker, "rm", "-f", "-v", REGISTRY_NAME], what=f"remove {REGISTRY_NAME}", detached=True)


def _owner() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"
