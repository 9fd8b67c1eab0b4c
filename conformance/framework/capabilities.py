"""What the cluster under test is: versions, runtimes, gates, node groups, and whether image volumes work.

Discovered once per run by the controller process and shipped to xdist workers as JSON.

Nodes differ in the field (a node pool mid-upgrade runs two kubelet or runtime versions side by
side), so every fact a kubelet or runtime decides is kept per **node group**: the tested nodes that
share kubelet version, runtime and version, and gates. Each group is probed on its own, and every
behaviour the kubelet decides is judged per group, by that group's row of the table
(`Capabilities.for_group`). A homogeneous cluster has one group and looks as if there were none.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace

from conformance.framework.expectations import FEATURE, SUBPATH_IN_API, known_defect_symptom
from conformance.framework.probe import MountProbe, Seen
from conformance.infra.versions import Version

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

    def group_key(self) -> tuple[str, str, bool | None, tuple[tuple[str, bool], ...]]:
        """What a node group shares: everything a row of the table can depend on."""
        return (self.kubelet_version, self.runtime, self.kubelet_gate, tuple(sorted(self.gates.items())))


@dataclass(frozen=True)
class NodeGroup:
    """Tested nodes that share kubelet version, runtime and version, and gates."""

    id: str  # test-id safe, e.g. "containerd-2.1.9" (see `_group_ids`)
    kubelet_version: str
    runtime: str
    nodes: tuple[str, ...]

    def label(self) -> str:
        """'containerd 2.1.9 (node-a, node-b)', as verdict lines name a group."""
        name, _, version = self.runtime.partition("://")
        return f"{name} {version} (kubelet {self.kubelet_version}; {', '.join(self.nodes)})"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-").lower()


def _group_ids(keys: list[tuple[str, str, bool | None, tuple[tuple[str, bool], ...]]]) -> list[str]:
    """One id per group key, naming only what differs between the groups: the runtime always, the
    kubelet when kubelets differ, the gates when gates differ; an index when that is still ambiguous."""
    kubelets_differ = len({key[0] for key in keys}) > 1
    gates_differ = len({key[2:] for key in keys}) > 1
    ids = []
    for kubelet, runtime, gate, gates in keys:
        parts = [f"kubelet-{_slug(kubelet)}"] if kubelets_differ else []
        parts.append(_slug(runtime.replace("://", "-")))
        if gates_differ:
            state = {True: "on", False: "off", None: "unknown"}
            parts += [f"ImageVolume-{state[gate]}", *(f"{name}-{state[on]}" for name, on in gates)]
        ids.append("-".join(parts))
    return [f"{group_id}-{ids[:index].count(group_id) + 1}" if ids.count(group_id) > 1 else group_id
            for index, group_id in enumerate(ids)]  # fmt: skip


@dataclass(frozen=True)
class Capabilities:
    server_version: str
    nodes: tuple[NodeInfo, ...]
    apiserver_keeps_image_volumes: bool
    admission_forces_always: bool = False  # AlwaysPullImages rewrote IfNotPresent to Always
    notes: tuple[str, ...] = field(default_factory=tuple)
    # The runtime probe at session start, per node group id; empty when not run (image volumes dropped).
    probes: Mapping[str, MountProbe] = field(default_factory=dict)
    # VolumeBindMountOptions (alpha, 1.37+) on: the dry-run Pod kept bindMountOptions on an emptyDir mount.
    apiserver_keeps_bind_mount_options: bool = False
    # What the provider lets the suite do behind the API (ClusterHandle.node_access): read a node's mount
    # table; restart a node's kubelet, its runtime (only on clusters the suite built).
    node_mounts_readable: bool = False
    kubelet_restartable: bool = False
    runtime_restartable: bool = False

    # -- node groups --------------------------------------------------------------------------------
    @property
    def groups(self) -> tuple[NodeGroup, ...]:
        """The tested nodes, grouped; in a stable order (by id), so every xdist worker sees the same."""
        by_key: dict[tuple[str, str, bool | None, tuple[tuple[str, bool], ...]], list[str]] = {}
        for node in self.nodes:
            by_key.setdefault(node.group_key(), []).append(node.name)
        keys = sorted(by_key)
        groups = [
            NodeGroup(group_id, key[0], key[1], tuple(sorted(by_key[key])))
            for group_id, key in zip(_group_ids(keys), keys, strict=True)
        ]
        return tuple(sorted(groups, key=lambda group: group.id))

    def group(self, group_id: str) -> NodeGroup:
        for group in self.groups:
            if group.id == group_id:
                return group
        raise KeyError(f"no node group {group_id!r} (groups: {', '.join(g.id for g in self.groups) or 'none'})")

    @property
    def multi_group(self) -> bool:
        """Nodes differ: node-deciding behaviours run once per group, each Pod pinned to its group."""
        return len(self.groups) > 1

    def for_group(self, group_id: str) -> Capabilities:
        """The cluster as one node group sees it: its nodes and its probe (what a kubelet row reads)."""
        members = set(self.group(group_id).nodes)
        probe = {group_id: self.probes[group_id]} if group_id in self.probes else {}
        return replace(self, nodes=tuple(n for n in self.nodes if n.name in members), probes=probe)

    @property
    def mount_probe(self) -> MountProbe | None:
        """The probe of a one-group view (`for_group`, or a homogeneous cluster); None otherwise."""
        return next(iter(self.probes.values())) if len(self.probes) == 1 and not self.multi_group else None

    # -- derived views used by the expectation table --------------------------------------------
    @property
    def apiserver_version(self) -> Version:
        """Decides validation, defaulting, admission and whether the field survives at all."""
        return Version.parse(self.server_version)

    @property
    def kubelet_version(self) -> Version:
        """Decides mounts. Per group (`for_group`) this is the group's; across groups the oldest (display)."""
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
        """The apiserver admits subPath on image volumes (SUBPATH_IN_API); kubelets have rows of their own."""
        return self.apiserver_version in SUBPATH_IN_API

    @property
    def artifact_mounts(self) -> bool:
        """The probe saw OCI artifacts (empty config) mount with their files, or could not tell (a registry or
        cluster problem): the artifact tests then run, and show it. False only on evidence of a refusal or
        a silently empty mount, and for a view of several groups. A refusal that shows one of the table's
        known defects (CRI-O 1.36 refusing an artifact it holds under two names) is that defect, not a
        runtime without artifacts: the artifact tests run, and show it."""
        probe = self.mount_probe
        if probe is None:
            return False
        if probe.artifacts_mount or probe.artifact.undetermined:
            return True
        return probe.artifact.seen is Seen.REFUSED and known_defect_symptom(probe.artifact.detail) is not None

    # -- verdicts before any test -----------------------------------------------------------------
    def cluster_unavailable_reason(self) -> str | None:
        """Why image volumes cannot work anywhere in this cluster (the apiserver's side), or None."""
        if self.apiserver_version not in FEATURE:
            return f"Kubernetes {self.server_version} predates ImageVolume (alpha in {FEATURE.minimum})"
        if not self.nodes:
            return "the cluster has no schedulable nodes"
        if not self.apiserver_keeps_image_volumes:
            return (
                f"the apiserver ({self.server_version}) silently drops spec.volumes[].image: the ImageVolume feature "
                "gate is off (enable it on kube-apiserver and kubelet for 1.31-1.34; default on from 1.35)"
            )
        return None

    def group_unavailable_reason(self, group_id: str) -> str | None:
        """Why image volumes cannot work on that node group (on evidence: a gate, the probe's mount), or None."""
        return self.for_group(group_id)._nodes_unavailable_reason()

    def _nodes_unavailable_reason(self) -> str | None:
        """For a one-group view: a kubelet with the gate off, or the probe's evidence of no mount."""
        off = [n.name for n in self.nodes if n.kubelet_gate is False]
        if off:
            return f"the ImageVolume gate is off on kubelet(s) {', '.join(off)} (enable featureGates.ImageVolume)"
        probe = self.mount_probe
        if probe is not None and probe.image_volume.refutes:
            return f"the runtime ({self.runtime}) does not mount image volumes: {probe.image_volume}"
        return None

    def feature_unavailable_reason(self) -> str | None:
        """One line explaining why image volumes cannot work (cluster-wide, or on a one-group view's nodes),
        or None. For a cluster of several groups see `unavailable_groups`."""
        if (reason := self.cluster_unavailable_reason()) is not None:
            return reason
        return None if self.multi_group else self._nodes_unavailable_reason()

    def unavailable_groups(self) -> dict[str, str]:
        """Group id → why image volumes do not work there, for every group where they do not."""
        if self.cluster_unavailable_reason() is not None:
            return {}
        return {g.id: reason for g in self.groups if (reason := self.group_unavailable_reason(g.id)) is not None}

    def identity(self) -> dict[str, object]:
        """What makes two runs comparable (a rerun merges only with a run on the same cluster)."""
        return {
            "kubernetes": self.server_version,
            "groups": [(g.id, g.runtime, g.kubelet_version) for g in self.groups],
        }

    def header_lines(self) -> list[str]:
        kept = self.apiserver_keeps_image_volumes
        kubelets = sorted({n.kubelet_version for n in self.nodes})
        lines = [
            f"apiserver {self.server_version} decides validation, defaulting and admission; image volumes kept by "
            f"apiserver: {kept}",
            f"kubelet {self.kubelet_version} decides mounts"
            + (f" (each node group by its own kubelet: {', '.join(kubelets)})" if len(kubelets) > 1 else ""),
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
        groups = self.groups
        if len(groups) > 1:
            lines.append(f"{len(groups)} node groups, each probed and judged on its own: " + "; ".join(
                f"[{g.id}] {g.label()}" for g in groups))  # fmt: skip
        for group in groups:
            if (probe := self.probes.get(group.id)) is not None:
                where = f" [{group.id}]" if len(groups) > 1 else ""
                lines.append(f"runtime probe{where}: {probe.summary()}")
        lines += list(self.notes)
        return lines

    def to_json(self) -> str:
        raw = asdict(self)
        raw["probes"] = {group: probe.as_dict() for group, probe in self.probes.items()}
        return json.dumps(raw)

    @classmethod
    def from_json(cls, text: str) -> Capabilities:
        raw = json.loads(text)
        raw["nodes"] = tuple(NodeInfo(**n) for n in raw["nodes"])
        raw["notes"] = tuple(raw.get("notes", ()))
        raw["probes"] = {g: MountProbe.from_dict(p) for g, p in (raw.get("probes") or {}).items()}
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
