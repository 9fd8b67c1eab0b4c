"""The registry containers beside a kind cluster — plain and TLS + htpasswd — wired into every node.

Their image is built here from the host's Debian suite (docker-registry package, the same binary the
local provider runs); `registry:2` cannot be pulled offline. This process pushes to `localhost:5001`
and `localhost:5002`. Pods reference the plain one as `localhost:5001/…`, which each node's CRI-O
maps to the container on the kind network (localhost inside a node is not the host), and the
authenticated one as `ivc-auth-registry:5000/…`, its name on the kind network (see `drop_in`).
`kind load docker-image` is no substitute: it imports into containerd, which CRI-O never reads.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import Path

from conformance.cluster import registries
from conformance.cluster.kind.cluster_config import AUTH_REGISTRY, KIND_NETWORK, REGISTRY_CONTAINERS, RegistryContainer
from conformance.cluster.kind.marks import LABEL_CLUSTER, LABEL_MANAGED_BY, LABEL_OWNER, MANAGED_BY, owner
from conformance.cluster.kind.node_image import node_setup
from conformance.cluster.kind.tools import Tools
from conformance.cluster.probes import expect_status
from conformance.cluster.runtimes import Runtime
from conformance.cluster.runtimes.base import RegistryRoute
from conformance.infra import debian
from conformance.infra.errors import ClusterError
from conformance.infra.process import last_line
from conformance.infra.progress import progress
from conformance.infra.wait import wait_for

IMAGE_REPO = "ivc/registry"
IMAGE_PACKAGES = ("docker-registry", "ca-certificates")
CONFIG_DIR = Path("/etc/ivc")  # the cluster's registry files, mounted read-only into each container
READY_TIMEOUT = 30.0


@dataclass(frozen=True)
class ContainerState:
    running: bool
    labels: dict[str, str]
    networks: dict[str, object]


def image(tools: Tools, cache: Path) -> str:
    """`ivc/registry:<inputs>`, imported once from a minbase root with Debian's docker-registry."""
    root = debian.root_tar("registry", IMAGE_PACKAGES, cache)
    tag = f"{IMAGE_REPO}:{hashlib.sha256(root.name.encode()).hexdigest()[:12]}"
    if tools.docker_run("image", "inspect", tag, what="inspect registry image", check=False).returncode == 0:
        return tag
    progress(f"kind: importing {tag} (docker-registry from Debian)")
    entrypoint = json.dumps(["/usr/bin/docker-registry"])
    tools.docker_run(
        "import",
        "--change",
        f"ENTRYPOINT {entrypoint}",
        "--change",
        f"LABEL {LABEL_MANAGED_BY}={MANAGED_BY}",
        str(root),
        tag,
        what="docker import registry image",
        timeout=600,
    )
    return tag


def state(tools: Tools, registry: RegistryContainer) -> ContainerState | None:
    proc = tools.docker_run("inspect", "--type", "container", registry.name, what="inspect registry", check=False)
    if proc.returncode != 0:
        return None
    info = json.loads(proc.stdout)[0]
    return ContainerState(
        running=bool(info.get("State", {}).get("Running")),
        labels=info.get("Config", {}).get("Labels") or {},
        networks=info.get("NetworkSettings", {}).get("Networks") or {},
    )


def usable(tools: Tools) -> bool:
    """Both registries run and are on the kind network."""
    for registry in REGISTRY_CONTAINERS:
        found = state(tools, registry)
        if found is None or not found.running or KIND_NETWORK not in found.networks:
            return False
    return True


def is_ours(tools: Tools, registry: RegistryContainer, cluster_name: str) -> bool:
    found = state(tools, registry)
    return (
        found is not None
        and found.labels.get(LABEL_MANAGED_BY) == MANAGED_BY
        and found.labels.get(LABEL_CLUSTER) == cluster_name
    )


def write_files(files: registries.RegistryFiles) -> None:
    """CA, serving certificate (for the names both the host and the nodes dial), htpasswd, configs."""
    registries.create_tls(files, ["localhost", "127.0.0.1", AUTH_REGISTRY.name])
    registries.create_htpasswd(files)
    registries.write_config(files.directory / "registry.yml", addr=":5000", root=Path("/var/lib/registry"))
    inside = CONFIG_DIR
    registries.write_config(
        files.directory / "auth-registry.yml",
        addr=":5000",
        root=Path("/var/lib/registry"),
        tls=(inside / files.certificate.name, inside / files.key.name),
        htpasswd=inside / files.htpasswd.name,
    )


def ensure(tools: Tools, cluster_name: str, files: registries.RegistryFiles, image_tag: str) -> list[str]:
    """Start whichever registry container is missing; returns the names this call created."""
    created = []
    for registry in REGISTRY_CONTAINERS:
        found = state(tools, registry)
        if found is not None and found.running:
            continue
        if found is not None:
            tools.docker_run("start", registry.name, what=f"start registry {registry.name}")
            continue
        if not files.password_file.exists():
            write_files(files)
        progress(f"kind: starting registry {registry.name} on 127.0.0.1:{registry.host_port}")
        config = "auth-registry.yml" if registry.tls else "registry.yml"
        proc = tools.docker_run(
            "run", "-d", "--name", registry.name, "--network", "bridge",
            "-p", f"127.0.0.1:{registry.host_port}:5000", "-v", f"{files.directory}:{CONFIG_DIR}:ro",
            "--label", f"{LABEL_MANAGED_BY}={MANAGED_BY}", "--label", f"{LABEL_CLUSTER}={cluster_name}",
            "--label", f"{LABEL_OWNER}={owner()}",
            image_tag, "serve", str(CONFIG_DIR / config),
            what=f"start registry {registry.name}", check=False,
        )  # fmt: skip
        if proc.returncode != 0:
            reason = last_line(proc.stderr)
            hint = (
                f"free 127.0.0.1:{registry.host_port} (see `docker ps --filter publish={registry.host_port}`)"
                if "allocated" in reason or "in use" in reason
                else "see `docker logs` of it"
            )
            raise ClusterError(f"registry container {registry.name} did not start ({reason}): {hint}")
        created.append(registry.name)
        wait_ready(tools, registry, files)
    return created


def wait_ready(tools: Tools, registry: RegistryContainer, files: registries.RegistryFiles) -> None:
    if registry.tls:
        url, statuses, cafile = f"https://{registry.host}/v2/", (401,), str(files.ca)
    else:
        url, statuses, cafile = f"http://{registry.host}/v2/", (200,), None

    def gone() -> str | None:
        found = state(tools, registry)
        return None if found is not None and found.running else f"registry container {registry.name} stopped"

    wait_for(
        f"registry {registry.name} on {registry.host}",
        lambda: expect_status(url, statuses, cafile=cafile),
        timeout=READY_TIMEOUT,
        gone=gone,
    )


def connect(tools: Tools) -> None:
    for registry in REGISTRY_CONTAINERS:
        found = state(tools, registry)
        if found is not None and KIND_NETWORK not in found.networks:
            tools.docker_run(
                "network", "connect", KIND_NETWORK, registry.name, what=f"connect {registry.name} to the kind network"
            )


def routes(files: registries.RegistryFiles) -> tuple[RegistryRoute, ...]:
    """The registries as a node's runtime is told about them. Only the plain one is remapped: Pods name
    the auth registry as the nodes reach it (`ivc-auth-registry:5000`), because containers/image never
    sends a pull's credentials to a remapped location (go.podman.io/image/v5 v5.38.0
    docker/docker_image_src.go newImageSourceAttempt: "we must not blindly send the credentials
    intended for the primary endpoint to mirrors")."""
    return tuple(
        RegistryRoute(prefix=r.in_network, location=r.in_network, insecure=False, ca_file=files.ca)
        if r.tls
        else RegistryRoute(prefix=r.host, location=r.in_network, insecure=True)
        for r in REGISTRY_CONTAINERS
    )


def wire_node(tools: Tools, node: str, files: registries.RegistryFiles, runtime: Runtime) -> None:
    """Write the runtime's registry files (from its declaration) into the node, then make it re-read them."""
    setup = replace(node_setup(runtime.name), registries=routes(files))
    for path, text in runtime.registry_files(setup).items():
        tools.node_exec(
            node, "sh", "-c", f"mkdir -p '{path.parent}' && cat > '{path}'", what=f"write {path} in {node}", input=text
        )
    if runtime.reload:
        tools.node_exec(node, *runtime.reload, what=f"reload {runtime.name} in {node}")


def remove(tools: Tools, names: list[str]) -> None:
    for name in names:
        progress(f"kind: removing registry {name}")
        tools.docker_run("rm", "-f", "-v", name, what=f"remove {name}", detached=True)
