"""One run of the suite, independent of pytest: obtain a cluster, learn what it is, push artifacts.

The pytest plugin calls `start_session` in the controller process and ships the resulting
`SuiteSession` to xdist workers as JSON. Scripts (the benchmark, a vendor's own harness) can
call it directly.
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
from conformance.cluster.errors import ClusterError
from conformance.cluster.progress import progress
from conformance.framework.artifacts import CATALOG, PushedArtifact, push_catalog, push_named
from conformance.framework.capabilities import (
    RELATED_GATES,
    Capabilities,
    NodeInfo,
    parse_feature_gate,
    parse_feature_metric,
)
from conformance.framework.kube import Kube
from conformance.framework.manifests import MANIFESTS_DIR
from conformance.framework.namespaces import RUN_LABEL, shared_namespace
from conformance.framework.pods import PodUnderTest
from conformance.framework.probe import MountProbe, probe_mounts
from conformance.framework.shared_pods import PRESTARTED, SharedPods
from conformance.oci import RegistryClient, RegistryError
from conformance.oci.node_images import SHELL_REPOSITORY, SHELL_TAG, NodeImageError, push_node_images, shell_image

# Namespaces of a run are deleted when it ends; older ones belong to a run that was killed (SIGKILL
# skips all cleanup). No run lives this long: CI allows 90 minutes.
STALE_NAMESPACE_SECONDS = 3 * 3600


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


def _probe_pod(registry_pull: str) -> dict[str, Any]:
    """A dry-run Pod: does the apiserver keep image volumes, and what does it default/force?"""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "ivc-capability-probe"},
        "spec": {
            "containers": [{"name": "main", "image": f"{registry_pull}/ivc/probe:1"}],
            "volumes": [
                {"name": "defaulted", "image": {"reference": f"{registry_pull}/ivc/probe:1"}},
                {
                    "name": "explicit",
                    "image": {"reference": f"{registry_pull}/ivc/probe:1", "pullPolicy": "IfNotPresent"},
                },
            ],
        },
    }


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


def discover_capabilities(kube: Kube, registry_pull: str) -> Capabilities:
    server_version = kube.server_version()
    stored = kube.create_pod("default", _probe_pod(registry_pull), dry_run=True)
    volumes = {v["name"]: v for v in stored["spec"].get("volumes", [])}
    keeps = "image" in volumes.get("defaulted", {})
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
    )


PROBE_TIMEOUT = 120.0


def probe_runtime(kube: Kube, shared: SharedPods, started: Mapping[tuple[str, str], PodUnderTest]) -> MountProbe:
    """The runtime probe (probe.py) reads two of the run's shared Pods, once all are decided."""
    settled = shared.settle(started)
    probe = probe_mounts(kube, shared.namespace, settled[PRESTARTED[0]], settled[PRESTARTED[1]])
    progress(f"runtime probe: image volume {probe.image_volume}; OCI artifact {probe.artifact}")
    return probe


def preseed(registry: RegistryEndpoint, cache_dir: Path) -> list[str]:
    """Push every image and artifact a run needs (pause, shell, the catalog) to `registry`, so an
    air-gapped registry is filled in one step. Returns the references. Raises ClusterError."""
    client = RegistryClient(registry)
    try:
        client.ping()
        references = list(push_node_images(client, cache_dir).values())
        references += [pushed.reference for pushed in push_catalog(client).values()]
    except (RegistryError, NodeImageError) as error:
        raise ClusterError(str(error)) from error
    return references


def start_session(handle: ClusterHandle, run_id: str | None = None, *, cache_dir: Path) -> SuiteSession:
    """Discover the cluster and push the shell image and shared artifacts. Raises ClusterError."""
    run_id = run_id or new_run_id()
    try:
        kube = Kube(handle.kubeconfig, handle.context)
        capabilities = discover_capabilities(kube, handle.registry.pull)
    except (ApiException, ConfigException, HTTPError, OSError) as error:  # not a bug of ours: an unusable cluster
        raise ClusterError(
            f"cluster at {handle.kubeconfig} is not usable: {type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else ''}; check the kubeconfig/context "
            f"and that the apiserver is up"
        ) from error
    stale = kube.namespaces_with_label(RUN_LABEL, older_than=STALE_NAMESPACE_SECONDS)
    if stale:
        progress(f"deleting {len(stale)} namespaces left by killed runs: {', '.join(stale)}")
        for name in stale:
            kube.delete_namespace(name)
    client = RegistryClient(handle.registry)
    started: dict[tuple[str, str], PodUnderTest] = {}
    probing = capabilities.feature_unavailable_reason() is None  # nothing to mount when the API drops the volume
    first = {name: entry for name, entry in CATALOG.items() if probing and name in {a for a, _ in PRESTARTED}}
    try:
        client.ping()
        progress(f"pushing the shell image and {len(CATALOG)} artifacts to {handle.registry.push}")
        shell = push_named(client, "shell", shell_image(cache_dir), SHELL_REPOSITORY, SHELL_TAG)
        artifacts = push_catalog(client, first)
        shared = SharedPods(kube, run_id, shell.reference, artifacts, MANIFESTS_DIR, PROBE_TIMEOUT)
        if probing:
            progress(
                f"probing the runtime: the run's {len(PRESTARTED)} shared Pods start (seed image, OCI artifact, …)"
            )
            started = shared.start(PRESTARTED)
        # The rest while they start (building the large artifact takes a while).
        artifacts |= push_catalog(client, {name: entry for name, entry in CATALOG.items() if name not in first})
        if probing:
            capabilities = replace(capabilities, mount_probe=probe_runtime(kube, shared, started))
    except BaseException as error:  # the run never starts: its shared Pods go now (no sweep will)
        if probing:
            with contextlib.suppress(Exception):
                kube.delete_namespace(shared_namespace(run_id))
        if isinstance(error, RegistryError | NodeImageError):
            raise ClusterError(str(error)) from error
        raise
    return SuiteSession(
        run_id=run_id, handle=handle, capabilities=capabilities, shell_image=shell.reference, artifacts=artifacts
    )
