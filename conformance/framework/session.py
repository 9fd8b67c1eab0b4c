"""One run of the suite, independent of pytest: obtain a cluster, learn what it is, push artifacts, probe.

The pytest plugin calls `start_session` in the controller process and ships the resulting
`SuiteSession` to xdist workers as JSON, and `end_session` when the run ends. Scripts (the
benchmark, a vendor's own harness) can call both directly.

Start, in order: the run's shared namespace (labelled for the Pod Security level of the shared
Pods) and its lease (namespaces.py: dead runs are swept by liveness); the cluster's capabilities
(versions, node groups, gates, what the apiserver keeps and forces, from a dry-run Pod there); the
shell image and the first artifacts; the shared Pods, once per node group, which the runtime probe
reads (probe.py); the rest of the artifacts while those start.
"""

from __future__ import annotations

import contextlib
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException
from urllib3.exceptions import HTTPError

from conformance.cluster.contract import ClusterHandle, RegistryEndpoint
from conformance.framework.artifacts import CATALOG, PushedArtifact, push_catalog, push_named
from conformance.framework.capabilities import (
    RELATED_GATES,
    Capabilities,
    NodeInfo,
    parse_feature_gate,
    parse_feature_metric,
)
from conformance.framework.diagnosis import EnvironmentProblem, admitted
from conformance.framework.manifests import MANIFESTS_DIR, secured
from conformance.framework.namespaces import RunLease, delete_run_namespaces, shared_namespace
from conformance.framework.pods import PodUnderTest
from conformance.framework.probe import MountProbe, Outcome, probe
from conformance.framework.shared_pods import (
    ARTIFACT,
    PRESTARTED,
    SEED,
    SEED_SUBPATH,
    SHARED_POD_SECURITY,
    Shape,
    SharedPods,
    Started,
    ensure_shared_namespace,
)
from conformance.infra.errors import ClusterError
from conformance.infra.kube import Kube
from conformance.infra.progress import progress
from conformance.oci import RegistryClient, RegistryError
from conformance.oci.base_images import SHELL_REPOSITORY, NodeImageError, push_base_images, shell_image

PROBE_TIMEOUT = 120.0
# Leases of runs this process started, renewed until `end_session`.
_LEASES: dict[str, RunLease] = {}


def new_run_id() -> str:
    return secrets.token_hex(3)


@dataclass(frozen=True)
class SuiteSession:
    run_id: str
    handle: ClusterHandle
    capabilities: Capabilities
    shell_image: str
    artifacts: dict[str, PushedArtifact]

    def to_json(self) -> str:
        return json.dumps(
            {
                "run_id": self.run_id,
                "handle": self.handle.to_json(),
                "capabilities": self.capabilities.to_json(),
                "shell_image": self.shell_image,
                "artifacts": {name: a.as_dict() for name, a in self.artifacts.items()},
            }
        )

    @classmethod
    def from_json(cls, text: str) -> SuiteSession:
        raw = json.loads(text)
        return cls(
            run_id=raw["run_id"],
            handle=ClusterHandle.from_json(raw["handle"]),
            capabilities=Capabilities.from_json(raw["capabilities"]),
            shell_image=raw["shell_image"],
            artifacts={name: PushedArtifact(**a) for name, a in raw["artifacts"].items()},
        )

    def group_nodes(self) -> dict[str, tuple[str, ...]]:
        """Node group id → its nodes, when Pods must be pinned to a group (the nodes differ); else empty."""
        caps = self.capabilities
        return {group.id: group.nodes for group in caps.groups} if caps.multi_group else {}


def _dry_run_pod(registry_pull: str) -> dict[str, Any]:
    """Does the apiserver keep image volumes, and what does it default/force? (A dry run: nothing starts.)"""
    reference = f"{registry_pull}/ivc/probe:1"
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "ivc-capability-probe"},
        "spec": {
            "containers": [
                {
                    "name": "main",
                    "image": reference,
                    # Kept only where VolumeBindMountOptions is on (1.37+ alpha); dropped otherwise.
                    "volumeMounts": [{"name": "scratch", "mountPath": "/scratch", "bindMountOptions": ["nodev"]}],
                }
            ],
            "volumes": [
                {"name": "defaulted", "image": {"reference": reference}},
                {"name": "explicit", "image": {"reference": reference, "pullPolicy": "IfNotPresent"}},
                {"name": "scratch", "emptyDir": {}},
            ],
        },
    }
    return secured(body, SHARED_POD_SECURITY)  # shaped as the shared Pods are, for the namespace it runs in


def unschedulable_reason(node: dict[str, Any]) -> str | None:
    """Why the suite's Pods (no tolerations, `kubernetes.io/os: linux`) cannot land on `node`, or None."""
    spec, labels = node.get("spec", {}), node["metadata"].get("labels", {})
    if spec.get("unschedulable"):
        return "cordoned (spec.unschedulable)"
    if labels.get("kubernetes.io/os", "linux") != "linux":
        return f"kubernetes.io/os={labels['kubernetes.io/os']}"
    for taint in spec.get("taints", []):
        if taint.get("effect") in ("NoSchedule", "NoExecute"):
            return f"taint {taint['key']}:{taint['effect']}"
    return None


def discover_capabilities(kube: Kube, registry_pull: str, namespace: str) -> Capabilities:
    """Versions, tested nodes and their gates, and what the apiserver keeps and forces (a dry-run Pod in
    `namespace`). Raises EnvironmentProblem when admission refuses that Pod."""
    server_version = kube.server_version()
    with admitted(f"the suite's dry-run Pod in {namespace}"):
        stored = kube.create_pod(namespace, _dry_run_pod(registry_pull), dry_run=True)
    volumes = {v["name"]: v for v in stored["spec"].get("volumes", [])}
    keeps = "image" in volumes.get("defaulted", {})
    mounts = stored["spec"]["containers"][0].get("volumeMounts", [])
    forced = keeps and volumes["explicit"]["image"].get("pullPolicy") == "Always"
    nodes = []
    notes = []
    for node in kube.nodes():
        info = node["status"]["nodeInfo"]
        name = node["metadata"]["name"]
        if (excluded := unschedulable_reason(node)) is not None:
            notes.append(f"node {name} is not tested: {excluded}")
            continue
        try:
            metrics = kube.node_metrics(name)
            gate, stage = parse_feature_metric(metrics)
            related = {name: on for name in RELATED_GATES if (on := parse_feature_gate(metrics, name)[0]) is not None}
        except Exception as error:  # noqa: BLE001 - any failure just means "unknown"
            gate, stage, related = None, "", {}
            notes.append(f"kubelet metrics of {name} unreadable ({type(error).__name__}); gate state unknown")
        nodes.append(
            NodeInfo(
                name=name,
                kubelet_version=info["kubeletVersion"],
                runtime=info["containerRuntimeVersion"],
                kubelet_gate=gate,
                gate_stage=stage,
                gates=related,
            )
        )
    return Capabilities(
        server_version=server_version,
        nodes=tuple(nodes),
        apiserver_keeps_image_volumes=keeps,
        admission_forces_always=forced,
        notes=tuple(notes),
        apiserver_keeps_bind_mount_options=any(mount.get("bindMountOptions") for mount in mounts),
    )


def _outcome(kube: Kube, namespace: str, started: Started | None, content: str) -> Outcome | None:
    """What a probe Pod showed: its listing of /volume and `content`, or why it did not start."""
    if started is None:
        return None
    if started.blocked is not None:
        return Outcome(blocked=started.blocked)
    if started.error is not None:
        # A refused mount is evidence; anything else (a timeout, another state it will not leave) says nothing
        # about the runtime's image volume support.
        first = started.error.splitlines()[0]
        return Outcome(refused=first) if started.refused else Outcome(timed_out=first)
    listed, read = PodUnderTest(kube, namespace, started.name).sh_each(["ls -A /volume", f"cat {content} 2>/dev/null"])
    return Outcome(entries=set(listed.stdout.split()), content=read.stdout)


def probe_groups(kube: Kube, shared: SharedPods, settled: Mapping[Shape, Started]) -> dict[str | None, MountProbe]:
    """Each node group's findings from its three probe Pods (seed, artifact, seed with subPath `dir`)."""
    groups = sorted({shape.group for shape in settled}, key=str)
    probes: dict[str | None, MountProbe] = {}
    for group in groups:

        def seen(wanted: Shape, content: str, group: str | None = group) -> Outcome | None:
            return _outcome(kube, shared.namespace, settled.get(wanted.on(group)), content)

        seed = seen(SEED, "/volume/dir/file")
        artifact = seen(ARTIFACT, "/volume/dir/file")
        assert seed is not None and artifact is not None  # always started
        found = probe(seed, artifact, seen(SEED_SUBPATH, "/volume/file"))
        progress(f"runtime probe{' [' + group + ']' if group else ''}: {found.summary()}")
        probes[group] = found
    return probes


def preseed(registry: RegistryEndpoint, cache_dir: Path) -> list[str]:
    """Push every image and artifact a run needs (pause, shell, the catalog) to `registry`, so an
    air-gapped registry is filled in one step. Returns the references. Raises ClusterError."""
    client = RegistryClient(registry)
    try:
        client.ping()
        references = list(push_base_images(client, cache_dir).values())
        references += [pushed.reference for pushed in push_catalog(client).values()]
    except (RegistryError, NodeImageError) as error:
        raise ClusterError(str(error)) from error
    return references


def _unusable(handle: ClusterHandle, error: BaseException) -> ClusterError:
    if isinstance(error, ApiException):
        detail = f"HTTP {error.status} {error.reason}"
    else:
        detail = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
    return ClusterError(
        f"cluster at {handle.kubeconfig} is not usable: {detail}; check the kubeconfig/context and that the "
        "apiserver is up"
    )


def start_session(handle: ClusterHandle, run_id: str | None = None, *, cache_dir: Path) -> SuiteSession:
    """Discover the cluster, push the shell image and the shared artifacts, probe each node group.
    Raises ClusterError (one line) when the cluster, its admission or the registry cannot be used."""
    run_id = run_id or new_run_id()
    namespace = shared_namespace(run_id)
    try:
        kube = Kube(handle.kubeconfig, handle.context)
        kube.server_version()
    except (ApiException, ConfigException, HTTPError, OSError) as error:  # not a bug of ours: an unusable cluster
        raise _unusable(handle, error) from error
    client = RegistryClient(handle.registry)
    try:
        ensure_shared_namespace(kube, run_id)  # it holds the run's lease
        lease = _LEASES[run_id] = RunLease(kube, run_id, progress)
        if swept := lease.start():
            progress(f"deleted the namespaces of {len(swept)} dead run(s): {', '.join(sorted(swept))}")
        capabilities = replace(
            discover_capabilities(kube, handle.registry.pull, namespace),
            node_mounts_readable=handle.node_access.available,
            kubelet_restartable="kubelet" in handle.node_access.restart,
            runtime_restartable="runtime" in handle.node_access.restart,
        )
        probing = capabilities.cluster_unavailable_reason() is None  # nothing to mount when the API drops it
        groups = [g.id for g in capabilities.groups if probing and capabilities.group_unavailable_reason(g.id) is None]
        shapes = [each.on(group if capabilities.multi_group else None) for group in groups for each in PRESTARTED
                  if each != SEED_SUBPATH or capabilities.api_accepts_image_subpath]  # fmt: skip
        first = {name: entry for name, entry in CATALOG.items() if name in {each.artifact for each in shapes}}
        client.ping()
        progress(f"pushing the shell image and {len(CATALOG)} artifacts to {handle.registry.push}")
        shell = push_named(client, "shell", shell_image(cache_dir), SHELL_REPOSITORY)
        artifacts = push_catalog(client, first)
        shared = SharedPods(
            kube, run_id, shell.reference, artifacts, MANIFESTS_DIR, PROBE_TIMEOUT,
            group_nodes={g.id: g.nodes for g in capabilities.groups} if capabilities.multi_group else None,
        )  # fmt: skip
        started = {}
        if shapes:
            progress(f"probing the runtime: {len(shapes)} shared Pods start ({len(groups)} node group(s))")
            started = shared.start(shapes)
        # The rest while they start (building the large artifact takes a while).
        artifacts |= push_catalog(client, {name: entry for name, entry in CATALOG.items() if name not in first})
        if started:
            probes = probe_groups(kube, shared, shared.settle(started))
            keyed = {group if group is not None else capabilities.groups[0].id: p for group, p in probes.items()}
            capabilities = replace(capabilities, probes=keyed)
    except BaseException as error:  # the run never starts: its namespaces and lease go now (no sweep will)
        with contextlib.suppress(Exception):
            end_session(run_id, kube)
        if isinstance(error, RegistryError | NodeImageError):
            raise ClusterError(str(error)) from error
        if isinstance(error, EnvironmentProblem):
            raise ClusterError(error.message) from error
        if isinstance(error, ApiException | ConfigException | HTTPError):
            raise _unusable(handle, error) from error
        raise
    return SuiteSession(
        run_id=run_id, handle=handle, capabilities=capabilities, shell_image=shell.reference, artifacts=artifacts
    )


def end_session(run_id: str, kube: Kube) -> None:
    """Stop renewing the run's lease and delete its namespaces (without waiting for the namespace
    controller). Raises what the API raised; the lease stops either way."""
    lease = _LEASES.pop(run_id, None)
    if lease is not None:
        lease.stop()
    delete_run_namespaces(kube, run_id)
