"""THE one table: behaviour × (Kubernetes version, runtime, runtime version) → expectation.

Every piece of version or runtime knowledge the suite has lives here, each row with its source.
A test declares the behaviour it checks (`@pytest.mark.behaviour("subpath-directory")`); the
plugin looks the behaviour up for the cluster under test and either skips the test with the
row's reason or hands the test its `Expectation`. Tests never compare versions themselves.

Rows are matched top to bottom; the first row whose ranges contain the cluster wins, so put
specific rows (a runtime, a version window) before general ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from conformance.framework.capabilities import Capabilities
from conformance.framework.versions import ANY, Version, VersionRange, before, between, since


class Level(StrEnum):
    REQUIRED = "required"  # every conforming cluster must show it
    OPTIONAL = "optional"  # a capability not every conforming runtime has; fails only where the table claims it
    INFORMATIONAL = "informational"  # observed and reported, never fails on the observation
    NOT_APPLICABLE = "not-applicable"  # skipped, with the row's reason


@dataclass(frozen=True)
class Rule:
    behaviour: str
    level: Level
    source: str  # KEP / PR / issue / doc section that justifies the row
    k8s: VersionRange = ANY
    runtime: str | None = None  # "cri-o", "containerd"; None = any
    runtime_version: VersionRange = ANY
    reason: str = ""  # why not applicable (skip message) or a note shown in reports
    expected: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    known_issue: str = ""  # hint printed next to a failure (the verdict stays a failure)

    def matches(self, kubernetes: Version, runtime: str, runtime_version: Version) -> bool:
        if kubernetes not in self.k8s:
            return False
        if self.runtime is not None and (self.runtime != runtime or runtime_version not in self.runtime_version):
            return False
        return True

    def scope(self) -> str:
        parts = [f"k8s {self.k8s}"]
        if self.runtime:
            parts.append(f"{self.runtime} {self.runtime_version}")
        return ", ".join(parts)


@dataclass(frozen=True)
class Expectation:
    behaviour: str
    level: Level
    source: str
    scope: str
    reason: str = ""
    expected: Mapping[str, str] = field(default_factory=dict)
    known_issue: str = ""

    @property
    def applies(self) -> bool:
        return self.level is not Level.NOT_APPLICABLE

    def __getitem__(self, key: str) -> str:
        return self.expected[key]


def _x(**values: str) -> Mapping[str, str]:
    return MappingProxyType(values)


KEP = "KEP-4639"
CRIO, CONTAINERD = "cri-o", "containerd"
# Anything older than 1.31 has no VolumeSource.Image at all; the session-level verdict covers it.
FEATURE = since("1.31")

TABLE: tuple[Rule, ...] = (
    # -- mount contents and read-only -----------------------------------------------------------
    Rule("content", Level.REQUIRED, f"{KEP}; e2e_node image_volume.go 'pull policy of Always'", FEATURE),
    Rule("read-only", Level.REQUIRED, "kubelet makeMounts mustMountRO; image plugin GetAttributes ReadOnly", FEATURE,
         expected=_x(error="Read-only file system")),
    Rule("noexec", Level.INFORMATIONAL, "KEP dropped noexec (enhancements#5354); API text removed in 1.36 (#135775)",
         FEATURE, reason="runtimes do not enforce noexec; critest asserts exec works"),
    # -- subPath --------------------------------------------------------------------------------
    Rule("subpath-rejected-by-api", Level.REQUIRED, "validation.go before #130135", between("1.31", "1.33"),
         expected=_x(message="not allowed in image volume sources")),
    Rule("subpath-rejected-by-api", Level.NOT_APPLICABLE, "#130135 allows subPath from 1.33", since("1.33"),
         reason="the API accepts subPath on image volumes since Kubernetes 1.33"),
    Rule("subpath-directory", Level.NOT_APPLICABLE, "#130135", before("1.33"),
         reason="subPath on image volumes needs Kubernetes >= 1.33"),
    Rule("subpath-directory", Level.REQUIRED, "containerd#11580: 2.1.x mounts the image root", since("1.33"),
         runtime=CONTAINERD, runtime_version=before("2.2"),
         known_issue="containerd 2.1.x ignores image_sub_path and mounts the image root (containerd#11580, "
                     "kubernetes#138640); upgrade to containerd >= 2.2"),
    Rule("subpath-directory", Level.REQUIRED, "#130135; CRI-O >= 1.33 fca4ea6223; containerd >= 2.2 cff8184ff",
         since("1.33"), known_issue="a runtime older than 1.33 (CRI-O) or 2.2 (containerd) may mount the image root"),
    Rule("subpath-file", Level.NOT_APPLICABLE, "#130135", before("1.33"),
         reason="subPath on image volumes needs Kubernetes >= 1.33"),
    Rule("subpath-file", Level.NOT_APPLICABLE, "containerd image_volume_linux_test.go", since("1.33"),
         runtime=CONTAINERD, reason="containerd supports directory subPaths only ('only directory subpath is supported')"),
    Rule("subpath-file", Level.OPTIONAL, "CRI-O safeMountSubPath (file subPaths untested upstream)",
         since("1.33"), runtime=CRIO),
    Rule("subpath-file", Level.INFORMATIONAL, "no upstream statement for this runtime", since("1.33")),
    Rule("subpath-missing", Level.NOT_APPLICABLE, "#130135", before("1.33"),
         reason="subPath on image volumes needs Kubernetes >= 1.33"),
    Rule("subpath-missing", Level.REQUIRED, "e2e_node image_volume.go 'subPath in volume is not existing'; "
         "cri-api ErrImageVolumeMountFailed", since("1.33"),
         expected=_x(reason="CreateContainerError", message="ImageVolumeMountFailed")),
    Rule("subpath-expr", Level.NOT_APPLICABLE, "#130135", before("1.33"),
         reason="subPathExpr on image volumes needs Kubernetes >= 1.33"),
    Rule("subpath-expr", Level.REQUIRED, "#130135 (kubelet expands subPathExpr from env)", since("1.33")),
    # -- pullPolicy -----------------------------------------------------------------------------
    Rule("pull-policy-default", Level.REQUIRED, "pkg/apis/core/v1/defaults.go SetDefaults_Volume", FEATURE),
    Rule("repull-on-recreate", Level.REQUIRED, "ImageVolumeSource docs: 're-resolved if the pod gets deleted and "
         "recreated'", FEATURE),
    Rule("if-not-present-keeps-node-copy", Level.REQUIRED, "kubelet image manager shared with containers", FEATURE),
    Rule("never-pull-absent", Level.REQUIRED, "kubelet image manager shared with containers", FEATURE,
         expected=_x(reason="ErrImageNeverPull")),
    Rule("container-restart-resolution", Level.INFORMATIONAL, "unspecified by the API (feature-facts §7)", FEATURE,
         reason="the API leaves what a restarted container sees unspecified"),
    # -- failures -------------------------------------------------------------------------------
    Rule("missing-image", Level.REQUIRED, "e2e_node image_volume.go 'image volume is not existing'", FEATURE,
         expected=_x(reasons="ErrImagePull,ImagePullBackOff")),
    Rule("missing-image-unused", Level.REQUIRED, "e2e_node image_volume.go 'not existing but unused'", FEATURE),
)

_BEHAVIOURS = frozenset(rule.behaviour for rule in TABLE)


def behaviours() -> frozenset[str]:
    return _BEHAVIOURS


def lookup(behaviour: str, caps: Capabilities, table: tuple[Rule, ...] = TABLE) -> Expectation:
    """The expectation for `behaviour` on the cluster described by `caps`."""
    return lookup_for(behaviour, caps.kubernetes, caps.runtime_name, caps.runtime_version, table)


def lookup_for(
    behaviour: str, kubernetes: Version, runtime: str, runtime_version: Version, table: tuple[Rule, ...] = TABLE
) -> Expectation:
    rows = [rule for rule in table if rule.behaviour == behaviour]
    if not rows:
        raise KeyError(f"behaviour {behaviour!r} has no row in the expectation table")
    for rule in rows:
        if rule.matches(kubernetes, runtime, runtime_version):
            return Expectation(
                behaviour=behaviour,
                level=rule.level,
                source=rule.source,
                scope=rule.scope(),
                reason=rule.reason,
                expected=dict(rule.expected),
                known_issue=rule.known_issue,
            )
    return Expectation(
        behaviour=behaviour,
        level=Level.NOT_APPLICABLE,
        source="no row",
        scope="-",
        reason=f"no expectation for Kubernetes {kubernetes} with {runtime} {runtime_version}",
    )
