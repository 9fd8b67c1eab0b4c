"""What the cluster under test is: versions, runtime, and whether ImageVolume is really on.

Discovered once per run by the controller process and shipped to xdist workers as JSON.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field

from conformance.framework.probe import MountProbe
from conformance.versions import Version

DIGEST_GATE = "ImageVolumeWithDigest"  # KEP-5365: volumeStatus.image.imageRef in container statuses
SECRET_PULLED_GATE = "KubeletEnsureSecretPulledImages"  # KEP-2535: cached private images need the Pod's credentials
# Kubelet gates beside ImageVolume that rows depend on, read from each kubelet's /metrics.
RELATED_GATES = (DIGEST_GATE, SECRET_PULLED_GATE)


@dataclass(frozen=True)
class NodeInfo:
    name: str
    kubelet_version: str
    runtime: str  # e.g. "cri-o://1.36.3"
    kubelet_gate: bool | None  # kubernetes_feature_enabled{name="ImageVolume"}; None when unreadable
    gate_stage: str = ""
    # kubernetes_feature_enabled of RELATED_GATES; a gate this kubelet does not know is absent
    gates: dict[str, bool] = field(default_factory=dict)

    @property
    def runtime_name(self) -> str:
        return self.runtime.split("://", 1)[0]

    @property
    def runtime_version(self) -> str:
        return self.runtime.split("://", 1)[-1]


@dataclass(frozen=True)
class Capabilities:
    server_version: str
    nodes: tuple[NodeInfo, ...]
    apiserver_keeps_image_volumes: bool
    admission_forces_always: bool = False  # AlwaysPullImages rewrote IfNotPresent to Always
    notes: tuple[str, ...] = field(default_factory=tuple)
    mount_probe: MountProbe | None = None  # the runtime probe at session start; None when not run

    # -- derived views used by the expectation table --------------------------------------------
    @property
    def apiserver_version(self) -> Version:
        """Decides validation, defaulting, admission and whether the field survives at all."""
        return Version.parse(self.server_version)

    @property
    def kubelet_version(self) -> Version:
        """Decides mounts: the oldest tested kubelet (the behaviour must hold on every node)."""
        if not self.nodes:
            return self.apiserver_version
        return min(Version.parse(n.kubelet_version) for n in self.nodes)

    @property
    def runtime_name(self) -> str:
        names = {n.runtime_name for n in self.nodes}
        return names.pop() if len(names) == 1 else "mixed"

    @property
    def runtime_version(self) -> Version | None:
        """The oldest node's runtime version; None when one does not parse (a vendor's `acme://devel`)."""
        versions = [Version.parse_or_none(n.runtime_version) for n in self.nodes]
        if not versions or None in versions:
            return None
        return min(v for v in versions if v is not None)

    @property
    def runtime(self) -> str:
        return ", ".join(sorted({n.runtime for n in self.nodes}))

    def kubelet_gate(self, gate: str) -> bool | None:
        """On every tested kubelet (True), off or unknown to one (False), None when metrics were unreadable."""
        if not self.nodes or any(n.kubelet_gate is None for n in self.nodes):
            return None
        return all(n.gates.get(gate, False) for n in self.nodes)

    @property
    def image_volume_with_digest(self) -> bool | None:
        """KEP-5365 on every kubelet: the kubelet fills volumeStatus.image."""
        return self.kubelet_gate(DIGEST_GATE)

    @property
    def kubelet_reverifies_pull_credentials(self) -> bool | None:
        """KEP-2535 on every kubelet: an image pulled with credentials needs them again for another Pod."""
        return self.kubelet_gate(SECRET_PULLED_GATE)

    @property
    def api_accepts_image_subpath(self) -> bool:
        """The apiserver admits subPath on image volumes (#130135, 1.33); the kubelet has rows of its own."""
        return self.apiserver_version >= Version(1, 33)

    def feature_unavailable_reason(self) -> str | None:
        """One line explaining why image volumes cannot work here, or None when they can."""
        if Version.parse(self.server_version) < Version(1, 31):
            return f"Kubernetes {self.server_version} predates ImageVolume (alpha in 1.31)"
        if not self.nodes:
            return "the cluster has no schedulable nodes"
        if not self.apiserver_keeps_image_volumes:
            return (
                f"the apiserver ({self.server_version}) silently drops spec.volumes[].image: the ImageVolume feature "
                "gate is off (enable it on kube-apiserver and kubelet for 1.31-1.34; default on from 1.35)"
            )
        off = [n.name for n in self.nodes if n.kubelet_gate is False]
        if off:
            return f"the ImageVolume gate is off on kubelet(s) {', '.join(off)} (enable featureGates.ImageVolume)"
        if self.mount_probe is not None and not self.mount_probe.image_volumes_mount:
            return f"the runtime ({self.runtime}) does not mount image volumes: {self.mount_probe.image_volume}"
        return None

    @property
    def artifact_mounts(self) -> bool:
        """The runtime probe mounted an OCI artifact (empty config) with its files."""
        return self.mount_probe is not None and self.mount_probe.artifacts_mount

    def header_lines(self) -> list[str]:
        kept = self.apiserver_keeps_image_volumes
        kubelets = sorted({n.kubelet_version for n in self.nodes})
        lines = [
            f"apiserver {self.server_version} decides validation, defaulting and admission; image volumes kept by "
            f"apiserver: {kept}",
            f"kubelet {self.kubelet_version} decides mounts"
            + (f" (the oldest of {', '.join(kubelets)})" if len(kubelets) > 1 else ""),
        ]
        for node in self.nodes:
            gate = {True: "on", False: "off", None: "unknown"}[node.kubelet_gate]
            stage = f" ({node.gate_stage})" if node.gate_stage else ""
            related = "".join(f", {name} {'on' if on else 'off'}" for name, on in sorted(node.gates.items()))
            lines.append(
                f"node {node.name}: kubelet {node.kubelet_version}, runtime {node.runtime}, gate {gate}{stage}{related}"
            )
        if self.admission_forces_always:
            lines.append("AlwaysPullImages admission is active: image volume pullPolicy is forced to Always")
        if self.mount_probe is not None:
            lines.append(
                f"runtime probe: image volume {self.mount_probe.image_volume}; OCI artifact {self.mount_probe.artifact}"
            )
        lines += list(self.notes)
        return lines

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Capabilities:
        raw = json.loads(text)
        raw["nodes"] = tuple(NodeInfo(**n) for n in raw["nodes"])
        raw["notes"] = tuple(raw.get("notes", ()))
        raw["mount_probe"] = MountProbe(**raw["mount_probe"]) if raw.get("mount_probe") else None
        return cls(**raw)


def parse_feature_metric(metrics_text: str) -> tuple[bool | None, str]:
    """Read `kubernetes_feature_enabled{name="ImageVolume",stage=…}` from a /metrics page."""
    return parse_feature_gate(metrics_text, "ImageVolume")


def parse_feature_gate(metrics_text: str, gate: str) -> tuple[bool | None, str]:
    """Read `kubernetes_feature_enabled{name="<gate>",stage=…}`: (enabled, stage), (None, "") when absent."""
    pattern = rf'^kubernetes_feature_enabled\{{name="{re.escape(gate)}",stage="(\w*)"\}}\s+([01])'
    match = re.search(pattern, metrics_text, re.MULTILINE)
    if not match:
        return None, ""
    return match[2] == "1", match[1]
