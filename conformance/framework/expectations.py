"""THE one table: behaviour × (Kubernetes version, runtime, runtime version) → expectation.

Every piece of version or runtime knowledge the suite has lives here, each row with its source.
A test declares the behaviour it checks (`@pytest.mark.behaviour("subpath-directory")`); the
plugin looks the behaviour up for the cluster under test and either skips the test with the
row's reason or hands the test its `Expectation`. Tests never compare versions themselves.

Rows are matched top to bottom; the first row whose ranges contain the cluster wins, so put
specific rows (a runtime, a version window) before general ones. A row's Kubernetes range is the
version of the component that decides the behaviour: the apiserver for validation, defaulting,
admission and the gate-off drop (`APISERVER_BEHAVIOURS`), the kubelet for everything that mounts.
The table is total from 1.31 on: a behaviour without a row for a cluster is a collection error.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import TYPE_CHECKING

from conformance.infra.versions import ANY, Version, VersionRange, before, between, since, through

if TYPE_CHECKING:  # capabilities.py reads this table's version facts (FEATURE, SUBPATH_IN_API)
    from conformance.framework.capabilities import Capabilities


class Level(StrEnum):
    REQUIRED = "required"  # every conforming cluster must show it
    # Required, but this runtime version is known to get it wrong (the row names the upstream issue): the
    # test runs as a strict xfail, so a failure reads "known defect" and a pass "fixed here? update the table".
    KNOWN_DEFECT = "known-defect"
    OPTIONAL = "optional"  # a capability not every conforming runtime has; fails only where the table claims it
    INFORMATIONAL = "informational"  # observed and reported, never fails on the observation
    NOT_APPLICABLE = "not-applicable"  # skipped, with the row's reason


CRIO, CONTAINERD = "cri-o", "containerd"
KNOWN_RUNTIMES = (CRIO, CONTAINERD)
# Capabilities properties a row may require with `when=` (each a bool of framework/capabilities.py).
CAPABILITY_FLAGS = (
    "admission_forces_always",
    "image_volume_with_digest",
    "artifact_mounts",
    "kubelet_reverifies_pull_credentials",
    "api_accepts_image_subpath",
    "apiserver_keeps_bind_mount_options",
    "node_mounts_readable",
    "kubelet_restartable",
    "runtime_restartable",
)


def runtime_matches(wanted: str | None, versions: VersionRange, runtime: str, version: Version | None) -> bool:
    """Any runtime for `wanted=None`; else that runtime, at a version that parses and lies in `versions`."""
    if wanted is None:
        return True
    return wanted == runtime and version is not None and version in versions


@dataclass(frozen=True)
class Rule:
    behaviour: str
    level: Level
    source: str  # KEP / PR / issue / doc section that justifies the row
    k8s: VersionRange = ANY
    runtime: str | None = None  # "cri-o", "containerd"; None = any
    runtime_version: VersionRange = ANY
    # A cluster setting the row needs (a true Capabilities flag, see CAPABILITY_FLAGS), e.g. an
    # admission plugin: not a version property, but still the table's decision, not the test's.
    when: str | tuple[str, ...] | None = None  # several: all of them
    reason: str = ""  # why not applicable (skip message) or a note shown in reports
    expected: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    # A known defect's level where the behaviour works, when no later row applies to this cluster (version
    # skew: the apiserver promises what this kubelet cannot do); else the next matching row gives it.
    defect_of: Level | None = None
    # A known defect's symptom: a regular expression the failure must show to be that defect; any other
    # failure of the test is a plain failure.
    symptom: str = ""

    def __post_init__(self) -> None:
        """Inputs that can be misspelled fail at import: flags, levels, symptoms."""
        if unknown := set(self.needs) - set(CAPABILITY_FLAGS):
            raise ValueError(f"row {self.behaviour!r}: when={sorted(unknown)} is not a Capabilities flag "
                             f"({', '.join(CAPABILITY_FLAGS)})")  # fmt: skip
        if (self.level is Level.KNOWN_DEFECT) != bool(self.symptom):
            raise ValueError(f"row {self.behaviour!r}: a known defect, and only a known defect, names its symptom")
        if self.symptom:
            re.compile(self.symptom)
        if self.runtime is not None and self.runtime not in KNOWN_RUNTIMES:
            raise ValueError(f"row {self.behaviour!r}: runtime {self.runtime!r} is not one of {KNOWN_RUNTIMES}")

    @property
    def needs(self) -> tuple[str, ...]:
        return (self.when,) if isinstance(self.when, str) else self.when or ()

    def matches(
        self, kubernetes: Version, runtime: str, runtime_version: Version | None, flags: frozenset[str] = frozenset()
    ) -> bool:
        """A runtime-specific row needs the runtime's name and a version that parses: an unknown runtime, or
        one whose version does not parse, gets the runtime-agnostic rows only."""
        if kubernetes not in self.k8s or not set(self.needs) <= flags:
            return False
        return runtime_matches(self.runtime, self.runtime_version, runtime, runtime_version)

    def scope(self) -> str:
        parts = [f"{decided_by(self.behaviour)} {self.k8s}"]
        if self.runtime:
            parts.append(f"{self.runtime} {self.runtime_version}")
        if self.needs:
            parts.append(f"when {' and '.join(self.needs)}")
        return ", ".join(parts)


@dataclass(frozen=True)
class Expectation:
    behaviour: str
    level: Level
    source: str
    scope: str
    reason: str = ""
    expected: Mapping[str, str] = field(default_factory=dict)
    defect_of: Level | None = None  # for a known defect: the level the behaviour has where it works
    symptom: str = ""  # for a known defect: what its failure shows (a regular expression)

    @property
    def applies(self) -> bool:
        return self.level is not Level.NOT_APPLICABLE

    def __getitem__(self, key: str) -> str:
        return self.expected[key]


class NoRow(KeyError):
    """A behaviour has no row for the cluster: the table is not total there."""


# Decided by the apiserver alone (dry runs, validation, admission, the gate-off drop): no Pod mounts anything.
APISERVER_BEHAVIOURS = frozenset(
    {
        "apiserver-keeps-image-volume",
        "api-reference-required",
        "api-pull-policy-unsupported",
        "api-one-volume-source",
        "api-template-empty-reference",
        "pull-policy-default",
        "always-pull-images-admission",
        "subpath-rejected-by-api",
        "pod-security-restricted",
        "api-bind-mount-options",
    }
)


def decided_by(behaviour: str) -> str:
    """The component whose version selects the behaviour's row: "apiserver" or "kubelet"."""
    return "apiserver" if behaviour in APISERVER_BEHAVIOURS else "kubelet"


def expects(**values: str) -> Mapping[str, str]:
    """What a row expects the test to see (field, message, reason…): read by the test through `expectation`."""
    return MappingProxyType(values)


KEP = "KEP-4639"
SUBPATH_IGNORED = (
    "containerd 2.1.x ignores image_sub_path and mounts the whole image (containerd#11580, backport #12298 closed)"
)
# What the subPath tests say when the image root is mounted instead of the subtree (test_subpath.py).
SUBPATH_IGNORED_SYMPTOM = r"subPath ignored"
# containerd 2.1.x is the whole line (the backport was closed); the newest release seen is 2.1.9.
CONTAINERD_2_1 = through("2.1", "2.1.9")
# containerd releases seen with image volumes but not artifacts and with the mount-error wording: 2.2.9–2.4.2.
CONTAINERD_SEEN = through("2.1", "2.4.2")
CONTAINERD_2_2_SEEN = through("2.2", "2.4.2")
SKEW_SUBPATH = "api_accepts_image_subpath"
# CRI-O's artifact store on go.podman.io/common libartifact, as 1.36.3 ships it; the newest CRI-O seen is 1.36.3.
CRIO_1_36_SEEN = through("1.36", "1.36.3")


def _subpath_ignored_by_old_kubelet(
    behaviour: str, expected: Mapping[str, str] = MappingProxyType({}), when: tuple[str, ...] = ()
) -> Rule:
    """Legal skew (kubelet up to three minors older): an apiserver >= 1.33 accepts subPath, a kubelet < 1.33
    mounts the whole image and says nothing. Measured with apiserver v1.33.13 and kubelet v1.32.9."""
    return Rule(
        behaviour,
        Level.KNOWN_DEFECT,
        "kubernetes v1.32.9 pkg/kubelet/kubelet_pods.go makeMounts applies subPath only to non-image volumes; "
        "image volume subPath arrived in the 1.33 kubelet (#130135)",
        before("1.33"),
        when=(SKEW_SUBPATH, *when),
        reason="this kubelet predates subPath on image volumes: it ignores the subPath the apiserver accepted "
        "and mounts the whole image (upgrade the kubelet to >= 1.33)",
        expected=expected,
        defect_of=Level.REQUIRED,
        symptom=SUBPATH_IGNORED_SYMPTOM,
    )


def _subpath_rows(
    behaviour: str, source: str, expected: Mapping[str, str] = MappingProxyType({})
) -> tuple[Rule, Rule, Rule, Rule]:
    """A behaviour of subPath on image volumes: required from 1.33 (`source`); n/a before, except where a
    kubelet < 1.33 meets an apiserver that accepts subPath; containerd 2.1.x ignores subPath."""
    return (
        _subpath_ignored_by_old_kubelet(behaviour, expected),
        Rule(
            behaviour,
            Level.NOT_APPLICABLE,
            "#130135",
            before("1.33"),
            reason="subPath on image volumes needs Kubernetes >= 1.33",
        ),
        Rule(
            behaviour,
            Level.KNOWN_DEFECT,
            "containerd#11580; kubernetes#138640; e2e_node image_volume.go skips subPath on containerd < 2.2",
            since("1.33"),
            runtime=CONTAINERD,
            runtime_version=CONTAINERD_2_1,
            reason=SUBPATH_IGNORED,
            expected=expected,
            symptom=SUBPATH_IGNORED_SYMPTOM,
        ),
        Rule(behaviour, Level.REQUIRED, source, since("1.33"), expected=expected),
    )


ARTIFACTS = "artifact_mounts"
NO_ARTIFACTS = (
    "the runtime does not mount OCI artifacts (the session's runtime probe: see the header); CRI-O >= 1.33 "
    "does, no containerd version does (containerd#11907)"
)
ALWAYS_PULL = "admission_forces_always"
FORCED_ALWAYS = (
    "AlwaysPullImages admission is active on this cluster: it rewrites every pullPolicy to Always "
    "(kubernetes v1.36.3 plugin/pkg/admission/alwayspullimages/admission.go Admit), so IfNotPresent/Never "
    "semantics and defaulting cannot be observed"
)
# Anything older than 1.31 has no VolumeSource.Image at all; the session-level verdict covers it.
FEATURE = since("1.31")
# The apiserver admits subPath on image volumes from 1.33 (#130135); before, it rejects it (a row below).
SUBPATH_IN_API = since("1.33")


def _artifact_rows(
    behaviour: str, level: Level, source: str, expected: Mapping[str, str] = MappingProxyType({})
) -> tuple[Rule, Rule]:
    """A behaviour of artifact mounts: `level` where the runtime probe mounted an artifact, else n/a."""
    return (
        Rule(behaviour, level, source, FEATURE, when=ARTIFACTS, expected=expected),
        Rule(
            behaviour,
            Level.NOT_APPLICABLE,
            "runtime probe at session start; containerd#11907",
            FEATURE,
            reason=NO_ARTIFACTS,
        ),
    )


TABLE: tuple[Rule, ...] = (
    # -- the session-level verdict: one clear answer, whatever the version -----------------------
    Rule(
        "image-volumes-available",
        Level.REQUIRED,
        f"{KEP}: VolumeSource.Image from 1.31 (alpha), on by default from 1.35, GA in 1.36",
    ),
    Rule(
        "apiserver-keeps-image-volume",
        Level.REQUIRED,
        "pkg/api/pod/util.go dropDisabledFields drops spec.volumes[].image when the gate is off (kind#3745)",
        FEATURE,
    ),
    # -- mount contents and read-only -----------------------------------------------------------
    Rule("content", Level.REQUIRED, f"{KEP}; e2e_node image_volume.go 'pull policy of Always'", FEATURE),
    Rule(
        "read-only",
        Level.REQUIRED,
        "kubelet makeMounts mustMountRO; image plugin GetAttributes ReadOnly",
        FEATURE,
        expected=expects(error="Read-only file system"),
    ),
    Rule(
        "noexec",
        Level.INFORMATIONAL,
        "KEP dropped noexec (enhancements#5354); API text removed in 1.36 (#135775)",
        FEATURE,
        reason="runtimes do not enforce noexec; critest asserts exec works",
    ),
    # -- subPath --------------------------------------------------------------------------------
    Rule(
        "subpath-rejected-by-api",
        Level.REQUIRED,
        "validation.go before #130135",
        between("1.31", "1.33"),
        expected=expects(message="not allowed in image volume sources"),
    ),
    Rule(
        "subpath-rejected-by-api",
        Level.NOT_APPLICABLE,
        "#130135 allows subPath from 1.33",
        since("1.33"),
        reason="the API accepts subPath on image volumes since Kubernetes 1.33",
    ),
    # Required everywhere from 1.33; containerd 2.1.x mounts the image root instead: a known defect (strict xfail).
    *_subpath_rows("subpath-directory", "#130135; CRI-O >= 1.33 fca4ea6223; containerd >= 2.2 cff8184ff"),
    # The API accepts a file subPath, runtimes differ: containerd refuses it ("only directory subpath is
    # supported"), CRI-O 1.36.3 fails the overlay onto a file. What every runtime owes is no silent lie.
    *_subpath_rows("subpath-file", "#130135; containerd image_volume_linux_test.go; observed on CRI-O 1.36.3"),
    *_subpath_rows(
        "subpath-missing",
        "e2e_node image_volume.go 'subPath in volume is not existing'; cri-api ErrImageVolumeMountFailed",
        expects(reason="CreateContainerError", message="ImageVolumeMountFailed"),
    ),
    *_subpath_rows("subpath-expr", "#130135 (kubelet expands subPathExpr from env)"),
    # A subPath that is a symlink out of the image: containerd refuses it ('path escapes from parent'), CRI-O
    # resolves it inside the image (securejoin). Either keeps the node's files out of the container.
    *_subpath_rows(
        "subpath-symlink-escape",
        "containerd v2.4.2 integration/image_volume_linux_test.go TestImageVolumeBasic: absolute, '../' and "
        "symlink subPaths give 'path escapes from parent'; cri-o v1.36.3 server/container_create_linux.go "
        "mountImage resolves subPath with securejoin inside the image",
    ),
    # containerd#14143: the failure path of a missing subPath leaked the image's active mount, and a later Pod
    # could not mount that image (fixed in containerd 2.2.9, 2.3.7, 2.4.2; earlier 2.2.x patches not run here).
    *_subpath_rows(
        "subpath-failure-leaves-image-mountable",
        "containerd#14143 (integration TestImageVolumeReusableAfterFailure); KEP-4639: the runtime manages "
        "the mount's lifecycle",
    ),
    # -- pullPolicy -----------------------------------------------------------------------------
    Rule(
        "pull-policy-default",
        Level.NOT_APPLICABLE,
        "alwayspullimages admission.go",
        FEATURE,
        when=ALWAYS_PULL,
        reason=FORCED_ALWAYS,
    ),
    Rule("pull-policy-default", Level.REQUIRED, "pkg/apis/core/v1/defaults.go SetDefaults_Volume", FEATURE),
    Rule(
        "repull-on-recreate",
        Level.REQUIRED,
        "ImageVolumeSource docs: 're-resolved if the pod gets deleted and recreated'",
        FEATURE,
    ),
    Rule(
        "if-not-present-keeps-node-copy",
        Level.NOT_APPLICABLE,
        "alwayspullimages admission.go",
        FEATURE,
        when=ALWAYS_PULL,
        reason=FORCED_ALWAYS,
    ),
    Rule("if-not-present-keeps-node-copy", Level.REQUIRED, "kubelet image manager shared with containers", FEATURE),
    Rule(
        "never-pull-absent",
        Level.NOT_APPLICABLE,
        "alwayspullimages admission.go",
        FEATURE,
        when=ALWAYS_PULL,
        reason=FORCED_ALWAYS,
    ),
    Rule(
        "never-pull-absent",
        Level.REQUIRED,
        "kubelet image manager shared with containers",
        FEATURE,
        expected=expects(reason="ErrImageNeverPull"),
    ),
    # The kubelet's own events say what it did with a present image (pkg/kubelet/images/image_manager.go).
    # The message gained " and can be accessed by the pod" with KubeletEnsureSecretPulledImages (beta, on
    # since 1.35); image volumes get the container wording, on the Pod itself (no fieldPath).
    Rule(
        "if-not-present-uses-node-copy",
        Level.NOT_APPLICABLE,
        "alwayspullimages admission.go",
        FEATURE,
        when=ALWAYS_PULL,
        reason=FORCED_ALWAYS,
    ),
    Rule(
        "if-not-present-uses-node-copy",
        Level.REQUIRED,
        "image_manager.go EnsureImageExists: 'Container image %q already present on machine'; "
        "no test in kubernetes v1.36.3 test/e2e_node/image_volume.go or "
        "test/e2e/common/node/image_volume.go covers it",
        FEATURE,
        expected=expects(reason="Pulled", message="already present on machine", pulling="Pulling"),
    ),
    Rule(
        "always-pulls-again",
        Level.REQUIRED,
        "image_manager.go imagePullPrecheck: PullAlways skips the presence check, then 'Pulling image %q'",
        FEATURE,
        expected=expects(reason="Pulling", message="Pulling image"),
    ),
    Rule(
        "container-restart-resolution",
        Level.INFORMATIONAL,
        "unspecified by the API: k8s.io/api v0.36.3 core/v1 types.go VolumeSource.Image promises re-resolution "
        "only when the pod is deleted and recreated",
        FEATURE,
        reason="the API leaves what a restarted container sees unspecified",
    ),
    # -- failures -------------------------------------------------------------------------------
    Rule(
        "missing-image",
        Level.REQUIRED,
        "e2e_node image_volume.go 'image volume is not existing'",
        FEATURE,
        expected=expects(reasons="ErrImagePull,ImagePullBackOff"),
    ),
    Rule("missing-image-unused", Level.REQUIRED, "e2e_node image_volume.go 'not existing but unused'", FEATURE),
    # -- layers: the volume is the merged image tree (KEP-4639 'Filesystem representation') -----------
    Rule(
        "layer-override",
        Level.REQUIRED,
        f"{KEP}: 'Duplicate files from distinct layers will be overwritten from the higher indexed layer'",
        FEATURE,
    ),
    Rule(
        "layer-whiteout",
        Level.REQUIRED,
        f"{KEP}: layers merged as for container images (image-spec whiteouts); "
        "no test in kubernetes v1.36.3 test/e2e_node/image_volume.go or "
        "test/e2e/common/node/image_volume.go covers it",
        FEATURE,
    ),
    Rule(
        "layer-opaque-directory",
        Level.REQUIRED,
        f"{KEP}: layers merged as for container images (image-spec opaque whiteouts); "
        "no test in kubernetes v1.36.3 test/e2e_node/image_volume.go or "
        "test/e2e/common/node/image_volume.go covers it",
        FEATURE,
    ),
    Rule("layer-symlinks", Level.REQUIRED, f"{KEP}: the image tree as for container images", FEATURE),
    Rule("layer-hardlink", Level.REQUIRED, f"{KEP}: the image tree as for container images", FEATURE),
    Rule(
        "layer-file-modes",
        Level.REQUIRED,
        f"{KEP}; file modes as seen in the container: "
        "no test in kubernetes v1.36.3 test/e2e_node/image_volume.go or "
        "test/e2e/common/node/image_volume.go checks them",
        FEATURE,
    ),
    Rule(
        "layer-ownership",
        Level.REQUIRED,
        f"{KEP}; kubernetes v1.36.3 pkg/volume/image/image.go SetUp changes no ownership; "
        "no test in kubernetes v1.36.3 test/e2e_node/image_volume.go or "
        "test/e2e/common/node/image_volume.go checks it",
        FEATURE,
    ),
    Rule("layer-empty-directory", Level.REQUIRED, f"{KEP}: the image tree as for container images", FEATURE),
    Rule("many-files", Level.REQUIRED, f"{KEP}: the image tree as for container images", FEATURE),
    Rule("non-ascii-names", Level.REQUIRED, f"{KEP}: the image tree as for container images", FEATURE),
    Rule(
        "large-file",
        Level.REQUIRED,
        f"{KEP} PRR: pull cost grows with image size; model weights are a main use ({KEP} user story 3)",
        FEATURE,
    ),
    # -- image formats registries serve (built here byte for byte: test_formats.py) -------------------
    Rule(
        "layer-gzip",
        Level.REQUIRED,
        "OCI image-spec v1.1 manifest.md: implementations MUST support application/vnd.oci.image.layer.v1.tar+gzip; "
        f"{KEP}: 'The regular OCI images (that are used to create container rootfs today) can be setup similarly'",
        FEATURE,
    ),
    Rule(
        "layer-zstd",
        Level.OPTIONAL,
        "OCI image-spec v1.1 manifest.md lists +zstd outside the layer types implementations MUST support; "
        f"{KEP}: 'which media types they want to support is deferred to them'",
        FEATURE,
    ),
    Rule(
        "docker-schema-2",
        Level.REQUIRED,
        f"{KEP}: regular container images 'can be setup similarly'; Docker Image Manifest V2 Schema 2 "
        "(distribution/distribution docs/content/spec/manifest-v2-2.md) is how many registries serve them",
        FEATURE,
    ),
    Rule(
        "multi-platform-index",
        Level.REQUIRED,
        f"OCI image-spec v1.1 image-index.md (a platform's manifest is chosen by platform); {KEP}: regular "
        "container images 'can be setup similarly'",
        FEATURE,
    ),
    Rule(
        "many-layers",
        Level.REQUIRED,
        f"{KEP} 'Filesystem representation': a single directory with the layers merged, duplicates from the higher "
        "indexed layer; a runtime that cannot must say so ('failures … reported on the pod reason and message')",
        FEATURE,
    ),
    Rule(
        "non-runnable-config",
        Level.REQUIRED,
        f"{KEP} 'Filesystem representation': the runtime returns the unpacked, merged layers as a directory; "
        "nothing of the image's config is run",
        FEATURE,
    ),
    # -- sharing: volumes, containers and Pods ---------------------------------------------------
    Rule("multiple-volumes", Level.REQUIRED, "e2e_node image_volume.go 'pod and multiple volumes'", FEATURE),
    Rule(
        "init-container",
        Level.REQUIRED,
        "image volumes are mounted per container at start (kubernetes v1.36.3 "
        "pkg/kubelet/kuberuntime/kuberuntime_manager.go SyncPod start, toKubeContainerImageVolumes); "
        "no test in kubernetes v1.36.3 test/e2e_node/image_volume.go or "
        "test/e2e/common/node/image_volume.go covers init containers",
        FEATURE,
    ),
    Rule(
        "sidecar-container",
        Level.REQUIRED,
        "image volumes are mounted per container, also for restartable init containers (kubernetes v1.36.3 "
        "pkg/kubelet/kuberuntime/kuberuntime_manager.go SyncPod start); "
        "no test in kubernetes v1.36.3 test/e2e_node/image_volume.go or "
        "test/e2e/common/node/image_volume.go covers sidecars",
        FEATURE,
    ),
    Rule(
        "same-image-two-pods",
        Level.REQUIRED,
        "e2e_node image_volume.go 'multiple pods and same image on the same node'; CRI-O per-container "
        "overlay (cri-o v1.36.3 server/container_create_linux.go mountImage)",
        FEATURE,
    ),
    Rule(
        "ephemeral-container",
        Level.REQUIRED,
        "k8s.io/api v0.36.3 core/v1 EphemeralContainerCommon.volumeMounts ('Pod volumes to mount into the "
        "container's filesystem'); image volumes are mounted per container at start, ephemeral containers "
        "included (kubernetes v1.36.3 pkg/kubelet/kuberuntime/kuberuntime_manager.go SyncPod); "
        "no upstream test mounts an image volume in one",
        FEATURE,
        expected=expects(error="Read-only file system"),
    ),
    # -- user namespaces (KEP-127): a node capability; where a Pod in one starts, its mount must be right -----
    Rule(
        "user-namespace",
        Level.KNOWN_DEFECT,
        "cri-o v1.36.3 server/container_create_linux.go mountImage: the image volume is an overlay mount carrying "
        "the Pod's ID mappings, and runc (>= 1.2, validate.go) maps IDs of bind mounts only; no upstream issue "
        "found (CRI-O's image volume tests skip user namespaces); observed with runc 1.4.4 here",
        FEATURE,
        runtime=CRIO,
        runtime_version=CRIO_1_36_SEEN,
        reason="CRI-O 1.36 asks the OCI runtime for an ID-mapped overlay mount of the image volume, which runc "
        "refuses ('id-mapped mounts are only supported for bind-mounts'): no container with an image volume "
        "starts in a user namespace",
        defect_of=Level.OPTIONAL,
        symptom=r"id-mapped mounts are only supported for bind-mounts",
    ),
    Rule(
        "user-namespace",
        Level.OPTIONAL,
        "KEP-127 (hostUsers: false); the kubelet sends no ID mappings for image volume mounts, the runtime maps "
        "them: containerd 2.3.0 db9546b6d, backported to 2.1.7 and 2.2.2 (integration "
        "TestImageVolumeWithUserNamespace: owned 0:0, read-only); CRI-O's image volume tests skip user namespaces",
        FEATURE,
        expected=expects(error="Read-only file system"),
    ),
    # -- references ------------------------------------------------------------------------------
    Rule(
        "digest-reference",
        Level.REQUIRED,
        "kubelet image manager shared with containers (kubernetes v1.36.3 pkg/kubelet/kuberuntime/"
        "kuberuntime_manager.go getImageVolumes → EnsureImageExists); "
        "no test in kubernetes v1.36.3 test/e2e_node/image_volume.go or "
        "test/e2e/common/node/image_volume.go uses a digest reference",
        FEATURE,
    ),
    # -- fsGroup ---------------------------------------------------------------------------------
    Rule(
        "fsgroup-no-ownership-change",
        Level.REQUIRED,
        "kubernetes v1.36.3 pkg/volume/image/image.go SetUp does nothing; k8s.io/api v0.36.3 core/v1 "
        "types.go: 'fsGroupChangePolicy has no effect on this volume type'",
        FEATURE,
        expected=expects(owned="1234:5678", other="0:0"),
    ),
    # -- OCI artifacts (empty config + artifactType): a capability, probed at session start ----------
    # CRI-O >= 1.33 mounts them; no containerd version does (containerd#11907, #11381). The probe
    # decides, not the runtime's name, so a vendor's runtime can show the capability.
    # Where artifacts mount they must mount right: the API says every OCI object "will be mounted read-only"
    # (k8s.io/api v0.36.3 core/v1 types.go ImageVolumeSource); a runtime may refuse artifacts, never mount them
    # wrongly. Required where the probe saw them mount (or could not tell: then these tests show it).
    *_artifact_rows(
        "artifact-content", Level.REQUIRED, "CRI-O >= 1.33 e429f75eed; cri-o test/oci_artifacts.bats 'mount'"
    ),
    *_artifact_rows(
        "artifact-read-only",
        Level.REQUIRED,
        "CRI-O >= 1.33 per-blob bind,ro mounts; cri-o test/oci_artifacts.bats 'mount'",
        expected=expects(error="Read-only file system"),
    ),
    *_artifact_rows(
        "artifact-mount-directory",
        Level.INFORMATIONAL,
        "CRI-O >= 1.33 mounts each blob bind,ro (cri-o v1.36.3 server/container_create_linux.go "
        "mountArtifact); the API's 'mounted read-only' says nothing about the directories around them",
    ),
    _subpath_ignored_by_old_kubelet("artifact-subpath", when=(ARTIFACTS,)),
    Rule(
        "artifact-subpath",
        Level.NOT_APPLICABLE,
        "#130135",
        before("1.33"),
        reason="subPath on image volumes needs Kubernetes >= 1.33",
    ),
    *_artifact_rows(
        "artifact-subpath",
        Level.REQUIRED,
        "CRI-O >= 1.33 2ac913d186 (filters blob paths by prefix); cri-o test/oci_artifacts.bats 'subPath'",
    ),
    # What every runtime owes, whether it mounts artifacts or not: no silent empty mount.
    Rule(
        "artifact-mounted-or-refused",
        Level.KNOWN_DEFECT,
        "containerd#11907 (open: 'only mounting correctly runnable OCI Images'); observed on containerd 2.3.7 here",
        FEATURE,
        runtime=CONTAINERD,
        runtime_version=CONTAINERD_SEEN,
        reason="containerd mounts an OCI artifact (empty config) as an empty directory, silently, instead of "
        "refusing it",
        symptom=r"mounts the artifact as \[\]",
    ),
    Rule(
        "artifact-mounted-or-refused",
        Level.REQUIRED,
        f"{KEP}: failures 'will be reported on the pod reason and message'; silent empty mounts are the known "
        "failure of runtimes without support (k3s#14323)",
        FEATURE,
    ),
    # One artifact under two names (tags, mirrors): CRI-O 1.36's artifact store looks a mount up by digest and
    # refuses a digest it holds under two names.
    Rule(
        "artifact-under-two-names",
        Level.KNOWN_DEFECT,
        "go.podman.io/common pkg/libartifact/store.go lookup by digest (container-libs#589), CRI-O v1.36.3 "
        "internal/ociartifact/libartifact_store.go: 'multiple artifacts found with matching digest'; no upstream "
        "issue found; observed on CRI-O 1.36.3 here",
        FEATURE,
        runtime=CRIO,
        runtime_version=CRIO_1_36_SEEN,
        when=ARTIFACTS,
        reason="CRI-O 1.36 refuses to mount an artifact it holds under two names (two tags or repositories of "
        "the same digest): 'multiple artifacts found with matching digest'",
        symptom=r"multiple artifacts found with matching digest",
    ),
    *_artifact_rows(
        "artifact-under-two-names",
        Level.REQUIRED,
        f"{KEP}: pulled like container images, whose content any of its names may reference",
    ),
    # -- private registries (KEP-4639 'Registry authentication'; k8s.io/api ImageVolumeSource.reference) ------
    Rule(
        "pull-secret-pod",
        Level.REQUIRED,
        f"{KEP}: 'Pull secrets will be assembled in the same way as for the container image'; "
        "no test in kubernetes v1.36.3 test/e2e_node/image_volume.go or "
        "test/e2e/common/node/image_volume.go covers them",
        FEATURE,
    ),
    Rule(
        "pull-secret-service-account",
        Level.REQUIRED,
        f"{KEP} pull secrets as for container images; the "
        "ServiceAccount admission plugin copies the account's imagePullSecrets into the Pod",
        FEATURE,
    ),
    Rule(
        "pull-secret-missing",
        Level.REQUIRED,
        "kubelet image manager shared with containers (kubernetes v1.36.3 pkg/kubelet/kuberuntime/"
        "kuberuntime_manager.go getImageVolumes → EnsureImageExists)",
        FEATURE,
        expected=expects(reasons="ErrImagePull,ImagePullBackOff"),
    ),
    # KEP-2535 is the kubelet's, not KEP-4639's: optional where its gate is on (an admin may still set
    # imagePullCredentialsVerificationPolicy: NeverVerify), observed elsewhere. Measured: the Pod without
    # credentials runs on kubelet 1.32.9 and fails its pull on 1.36.3.
    Rule(
        "pull-credentials-reverified",
        Level.OPTIONAL,
        "KEP-2535: pkg/features/kube_features.go KubeletEnsureSecretPulledImages alpha 1.33, beta (on) 1.35; "
        "image volumes pull through imagePuller.EnsureImageExists (pkg/kubelet/kuberuntime/kuberuntime_manager.go)",
        since("1.33"),
        when="kubelet_reverifies_pull_credentials",
        expected=expects(reasons="ErrImagePull,ImagePullBackOff"),
    ),
    Rule(
        "pull-credentials-reverified",
        Level.INFORMATIONAL,
        "KEP-2535 gate KubeletEnsureSecretPulledImages (absent before 1.33, off by default in 1.33-1.34)",
        FEATURE,
        reason="without KEP-2535 the kubelet mounts an image already on the node for any Pod (IfNotPresent)",
    ),
    Rule(
        "pull-secret-not-exposed",
        Level.REQUIRED,
        "kubelet events and statuses name the image, never the "
        "credentials (image_manager.go); the suite masks RegistryEndpoint.password",
        FEATURE,
    ),
    # -- API validation through the apiserver (kubernetes v1.36.3 pkg/apis/core/validation/validation.go) --
    Rule(
        "api-reference-required",
        Level.REQUIRED,
        "validation.go: reference required when opts.ResourceIsPod",
        FEATURE,
        expected=expects(field="spec.volumes[0].image.reference", message="Required value"),
    ),
    # Observed on 1.36.3: AlwaysPullImages' Admit rewrites even "Sometimes" to Always before validation runs.
    Rule(
        "api-pull-policy-unsupported",
        Level.NOT_APPLICABLE,
        "alwayspullimages admission.go Admit before Validate",
        FEATURE,
        when=ALWAYS_PULL,
        reason="AlwaysPullImages admission rewrites any pullPolicy, even an unsupported "
        "one, to Always before validation",
    ),
    Rule(
        "api-pull-policy-unsupported",
        Level.REQUIRED,
        "validation.go validateImageVolumeSource pullPolicy",
        FEATURE,
        expected=expects(
            field="spec.volumes[0].image.pullPolicy", supported='supported values: "Always", "IfNotPresent", "Never"'
        ),
    ),
    Rule(
        "api-one-volume-source",
        Level.REQUIRED,
        "validation.go validateVolumeSource",
        FEATURE,
        expected=expects(field="spec.volumes[0].image", message="Forbidden: may not specify more than 1 volume type"),
    ),
    # A Deployment's template: the reference may be left for a controller to fill in, until 1.37.
    Rule(
        "api-template-empty-reference",
        Level.REQUIRED,
        "k8s.io/api core/v1 types.go ImageVolumeSource.reference +optional 'to allow higher level config "
        "management to default or override container images in workload controllers'; validation.go "
        "validateImageVolumeSource checks opts.ResourceIsPod (v1.36.3)",
        between("1.31", "1.37"),
        expected=expects(outcome="accepted"),
    ),
    Rule(
        "api-template-empty-reference",
        Level.REQUIRED,
        "kubernetes#135989 (fixes #135988, in v1.37.0): validateImageVolumeSource requires the reference in "
        "templates too, unless the old object had an empty one (AllowEmptyImageVolumeReference)",
        since("1.37"),
        expected=expects(
            outcome="rejected", field="spec.template.spec.volumes[0].image.reference", message="Required value"
        ),
    ),
    # KEP-5855 bindMountOptions (1.37, alpha): never for image volumes (kubernetes#140013).
    Rule(
        "api-bind-mount-options",
        Level.NOT_APPLICABLE,
        "k8s.io/api v0.37.2 core/v1 VolumeMount.bindMountOptions (KEP-5855)",
        before("1.37"),
        reason="volumeMounts[].bindMountOptions exists from Kubernetes 1.37 (KEP-5855, alpha)",
    ),
    Rule(
        "api-bind-mount-options",
        Level.REQUIRED,
        "kubernetes v1.37.2 pkg/apis/core/validation/validation.go validateVolumeMounts (kubernetes#140013)",
        since("1.37"),
        when="apiserver_keeps_bind_mount_options",
        expected=expects(
            outcome="rejected",
            field="spec.containers[0].volumeMounts[0].bindMountOptions",
            message='Invalid value: ["noexec"]: bindMountOptions may not be used with image volumes',
        ),
    ),
    Rule(
        "api-bind-mount-options",
        Level.REQUIRED,
        "kubernetes v1.37.2 pkg/api/pod/util.go dropDisabledFields: bindMountOptions dropped while the "
        "VolumeBindMountOptions gate is off (alpha, off by default)",
        since("1.37"),
        expected=expects(outcome="dropped"),
    ),
    # -- Pod Security admission: may a `restricted` namespace run image volumes? ------------------------------
    # The suite's test namespaces enforce `restricted` wherever this row says it admits image volumes, else
    # `baseline` (`restricted_namespaces_admit_image_volumes`).
    Rule(
        "pod-security-restricted",
        Level.INFORMATIONAL,
        "k8s.io/pod-security-admission before kubernetes#130394 (v1.33.0): check_restrictedVolumes.go lists no "
        "image volume, which counts as restricted volume type 'unknown'",
        between("1.31", "1.33"),
        reason="Pod Security `restricted` predates image volumes here (they were allowed in 1.33, "
        "kubernetes#130394): the suite's namespaces enforce `baseline` instead",
        expected=expects(outcome="rejected", message="restricted volume types"),
    ),
    Rule(
        "pod-security-restricted",
        Level.REQUIRED,
        "kubernetes#130394 (v1.33.0): pod-security-admission check_restrictedVolumes.go allows volume.Image "
        "('users who can create a pod with a certain image should also be able to use ImageVolume')",
        since("1.33"),
        expected=expects(outcome="admitted"),
    ),
    # -- admission (kubernetes v1.36.3 plugin/pkg/admission/alwayspullimages/admission.go) ----------------
    Rule(
        "always-pull-images-admission",
        Level.REQUIRED,
        "plugin/pkg/admission/alwayspullimages admission_test.go; "
        "docs: 'The AlwaysPullImages Admission Controller does also work for this volume source'",
        FEATURE,
        when=ALWAYS_PULL,
        expected=expects(stored="Always"),
    ),
    Rule(
        "always-pull-images-admission",
        Level.NOT_APPLICABLE,
        "a cluster setting, discovered by a dry-run Pod",
        FEATURE,
        reason="AlwaysPullImages admission is not enabled on this cluster (a dry-run Pod kept pullPolicy "
        "IfNotPresent); enable it with `python -m conformance.cluster up --provider local "
        "--admission-plugins AlwaysPullImages` (a fresh local cluster) or kube-apiserver "
        "--enable-admission-plugins=…,AlwaysPullImages",
    ),
    # -- kubelet metrics (#130135; kubernetes v1.36.3 pkg/kubelet/metrics/metrics.go): not part of conformance,
    # hence optional -------------------------------------------------------------------------------------
    Rule(
        "metrics-mount-succeeded",
        Level.NOT_APPLICABLE,
        "#130135 added the counters",
        before("1.33"),
        reason="the kubelet image volume metrics exist from Kubernetes 1.33 (#130135)",
    ),
    Rule(
        "metrics-mount-succeeded",
        Level.OPTIONAL,
        "#130135; OpenShift image_volume.go 'metrics'",
        between("1.33", "1.35"),
        expected=expects(
            requested="kubelet_image_volume_requested_total",
            succeeded="kubelet_image_volume_mounted_succeed_total",
            stability="ALPHA",
        ),
    ),
    Rule(
        "metrics-mount-succeeded",
        Level.OPTIONAL,
        "#135195 moved the metrics to BETA (CHANGELOG-1.35)",
        since("1.35"),
        expected=expects(
            requested="kubelet_image_volume_requested_total",
            succeeded="kubelet_image_volume_mounted_succeed_total",
            stability="BETA",
        ),
    ),
    Rule(
        "metrics-mount-errors",
        Level.NOT_APPLICABLE,
        "#130135 added the counters",
        before("1.33"),
        reason="the kubelet image volume metrics exist from Kubernetes 1.33 (#130135)",
    ),
    Rule(
        "metrics-mount-errors",
        Level.KNOWN_DEFECT,
        "containerd#11580",
        since("1.33"),
        runtime=CONTAINERD,
        runtime_version=CONTAINERD_2_1,
        reason=SUBPATH_IGNORED + ": a missing subPath mounts the root instead of failing, no mount error to count",
        symptom=SUBPATH_IGNORED_SYMPTOM,
    ),
    Rule(
        "metrics-mount-errors",
        Level.KNOWN_DEFECT,
        "kubernetes v1.36.3 pkg/kubelet/kuberuntime/kuberuntime_manager.go incrementImageVolumeMetrics; containerd "
        "v2.3.7 internal/cri/server/container_create.go (no upstream issue for this; the same counter's other false "
        "successes: kubernetes#138460)",
        since("1.33"),
        runtime=CONTAINERD,
        runtime_version=CONTAINERD_2_2_SEEN,
        symptom=r"mounted_errors_total on \S+ grew by 0 over a failed image volume mount",
        reason="containerd wraps the mount error as 'failed to mount image volume: ImageVolumeMountFailed: …', and "
        "the kubelet counts an error only when the message starts with 'ImageVolumeMountFailed': the failed "
        "mount is counted as a success",
    ),
    Rule(
        "metrics-mount-errors",
        Level.OPTIONAL,
        "#130135; a missing subPath fails CreateContainer",
        between("1.33", "1.35"),
        expected=expects(errors="kubelet_image_volume_mounted_errors_total", stability="ALPHA"),
    ),
    Rule(
        "metrics-mount-errors",
        Level.OPTIONAL,
        "#135195 moved the metrics to BETA (CHANGELOG-1.35)",
        since("1.35"),
        expected=expects(errors="kubelet_image_volume_mounted_errors_total", stability="BETA"),
    ),
    # -- kubelet hygiene ---------------------------------------------------------------------------------
    # Before 1.37 the kubelet ensured every image volume's image on each Pod sync, with an event each time
    # (kubernetes#138644); #138655 (v1.37.0, not in any 1.36.x patch) pulls only when a container starts.
    Rule(
        "no-event-storm",
        Level.KNOWN_DEFECT,
        "kubernetes#138644: 'kubelet would generate an event once per second for every image volume in a pod'; "
        "fixed by #138655 in v1.37.0, not backported (CHANGELOG-1.36 through 1.36.6)",
        between("1.31", "1.37"),
        reason="this kubelet ensures an image volume's image on every sync of a running Pod, one event each "
        "time (kubernetes#138644, fixed in 1.37.0)",
        defect_of=Level.OPTIONAL,
        symptom=r"event storm",
    ),
    Rule(
        "no-event-storm",
        Level.OPTIONAL,
        "kubernetes#138655 (v1.37.0): image volumes are pulled only when a container is about to start",
        since("1.37"),
    ),
    # -- node lifecycle (KEP-4639 'Lifecycling and Garbage Collection') ---------------------------------
    Rule(
        "deletion-leaves-no-mounts",
        Level.REQUIRED,
        f"{KEP} CRI: 'The runtime needs to ensure that mount and also manages its lifecycle, for example to "
        "remove the bind mount on container removal'; containerd v2.4.2 integration image_volume_linux_test.go "
        "(the snapshot gone within 30 s of the Pod); containerd#14032",
        FEATURE,
        when="node_mounts_readable",
    ),
    Rule(
        "deletion-leaves-no-mounts",
        Level.NOT_APPLICABLE,
        "the node's mount table, through the provider's node access",
        FEATURE,
        reason="the suite has no node access (an existing cluster without --node-command): a node's mount table "
        "cannot be read",
    ),
    Rule(
        "runtime-restart",
        Level.REQUIRED,
        "containerd v2.4.2 integration TestImageVolumeSetupIfContainerdRestarts; a runtime restart leaves running "
        f"containers alone (CRI); {KEP}: the runtime manages the mount's lifecycle",
        FEATURE,
        when="runtime_restartable",
    ),
    Rule(
        "runtime-restart",
        Level.NOT_APPLICABLE,
        "a disruptive check",
        FEATURE,
        reason="the suite restarts a node's runtime only on clusters it built (local, kind) or where the user allows "
        "it (--cluster=existing --node-command … --allow-node-restarts), never a runtime given with --runtime-endpoint",
    ),
    Rule(
        "kubelet-restart",
        Level.REQUIRED,
        f"{KEP} CRI: mounted volume paths in ImageStatus 'to ensure that no context gets lost in restart scenarios'; "
        "a kubelet restart leaves running containers alone",
        FEATURE,
        when="kubelet_restartable",
    ),
    Rule(
        "kubelet-restart",
        Level.NOT_APPLICABLE,
        "a disruptive check",
        FEATURE,
        reason="the suite restarts a node's kubelet only on clusters it built (local, kind) or where the user allows "
        "it (--cluster=existing --node-command … --allow-node-restarts)",
    ),
    Rule(
        "rmi-refused-while-in-use",
        Level.OPTIONAL,
        "CRI-O 3a256325a2 'Make ImageVolume garbage collection work'; "
        "cri-o test/oci_volumes.bats 'OCI image volume mount lifecycle'",
        FEATURE,
        runtime=CRIO,
        runtime_version=since("1.31"),
        expected=expects(message="image is in use"),
    ),
    Rule(
        "rmi-refused-while-in-use",
        Level.NOT_APPLICABLE,
        "containerd image volume leases (containerd v2.3.7 internal/cri/server/container_image_mount.go)",
        FEATURE,
        runtime=CONTAINERD,
        reason="containerd holds an image volume's snapshot by a lease per sandbox instead of refusing "
        "RemoveImage; only CRI-O refuses rmi of an image in use by an image volume",
    ),
    Rule(
        "rmi-refused-while-in-use",
        Level.NOT_APPLICABLE,
        "cri-o test/oci_volumes.bats",
        FEATURE,
        reason="only CRI-O (>= 1.31) documents refusing rmi of an image in use by an image volume",
    ),
    Rule(
        "volume-status-image-ref",
        Level.NOT_APPLICABLE,
        "KEP-5365; k8s.io/api v0.36.0",
        before("1.36"),
        reason="status.containerStatuses[].volumeMounts[].volumeStatus.image.imageRef (KEP-5365) exists from "
        "Kubernetes 1.36",
    ),
    # Informational: the runtime must fill CRI ImageSpec.image_ref, and CRI-O 1.36.3 does not (observed
    # with the gate on everywhere: no volumeStatus). A reported imageRef must still name the digest.
    Rule(
        "volume-status-image-ref",
        Level.INFORMATIONAL,
        "KEP-5365 ImageVolumeWithDigest (alpha in 1.36, off by "
        "default); cri-api ImageSpec.image_ref = 20; critest 'image digest in ContainerStatus mounts'",
        since("1.36"),
        when="image_volume_with_digest",
    ),
    Rule(
        "volume-status-image-ref",
        Level.NOT_APPLICABLE,
        "KEP-5365 ImageVolumeWithDigest is alpha in 1.36",
        since("1.36"),
        reason="the ImageVolumeWithDigest feature gate (KEP-5365, alpha, off by default) is not on "
        "for the kubelet; enable it on kube-apiserver and kubelet (local: --feature-gates "
        "ImageVolumeWithDigest=true)",
    ),
)

_BEHAVIOURS = frozenset(rule.behaviour for rule in TABLE)


def behaviours() -> frozenset[str]:
    return _BEHAVIOURS


def known_defect_symptom(text: str) -> str | None:
    """The symptom of one of the table's known defects that `text` shows, or None."""
    return next((rule.symptom for rule in TABLE if rule.symptom and re.search(rule.symptom, text)), None)


def known_defect_reason(expectation: Expectation) -> str:
    return (
        f"known defect of this version: {expectation.reason} ({expectation.source}); if this passes, the "
        "defect is fixed here: update the expectation table"
    )


def runtime_notes(caps: Capabilities, table: tuple[Rule, ...] = TABLE) -> list[str]:
    """What the table could not apply to this cluster's runtime, for the header and the summary."""
    known = sorted({rule.runtime for rule in table if rule.runtime})
    if caps.runtime_name not in known:
        return [f"runtime {caps.runtime} is not in the expectation table: its rows for {', '.join(known)} are not "
                "applied, the runtime-agnostic rows are"]  # fmt: skip
    if caps.runtime_version is None:
        return [f"runtime version of {caps.runtime} does not parse: the version-specific rows for "
                f"{caps.runtime_name} are not applied, the runtime-agnostic rows are"]  # fmt: skip
    return []


def lookup_on(behaviour: str, caps: Capabilities, group: str | None, table: tuple[Rule, ...] = TABLE) -> Expectation:
    """The expectation for `behaviour` where it is decided: on node group `group` for what a kubelet and its
    runtime decide (the cluster itself when it has one group), on the apiserver otherwise."""
    if group is not None and decided_by(behaviour) == "kubelet":
        return lookup(behaviour, caps.for_group(group), table)
    return lookup(behaviour, caps, table)


def restricted_namespaces_admit_image_volumes(caps: Capabilities) -> bool:
    """Whether Pod Security `restricted` admits image volumes on this apiserver (the table's row says)."""
    return lookup("pod-security-restricted", caps).expected.get("outcome") == "admitted"


def lookup(behaviour: str, caps: Capabilities, table: tuple[Rule, ...] = TABLE) -> Expectation:
    """The expectation for `behaviour` on the cluster described by `caps`, at the deciding component's version."""
    flags = frozenset(flag for flag in CAPABILITY_FLAGS if getattr(caps, flag) is True)
    version = caps.apiserver_version if decided_by(behaviour) == "apiserver" else caps.kubelet_version
    return lookup_for(behaviour, version, caps.runtime_name, caps.runtime_version, table, flags)


def lookup_for(
    behaviour: str,
    kubernetes: Version,
    runtime: str,
    runtime_version: Version | None,
    table: tuple[Rule, ...] = TABLE,
    flags: frozenset[str] = frozenset(),
) -> Expectation:
    rows = [rule for rule in table if rule.behaviour == behaviour]
    if not rows:
        raise KeyError(f"behaviour {behaviour!r} has no row in the expectation table")
    matching = [rule for rule in rows if rule.matches(kubernetes, runtime, runtime_version, flags)]
    if matching:
        rule = matching[0]
        if rule.level is Level.KNOWN_DEFECT and rule.defect_of is not None:
            return Expectation(behaviour, Level.KNOWN_DEFECT, rule.source, rule.scope(), rule.reason,
                               dict(rule.expected), defect_of=rule.defect_of, symptom=rule.symptom)  # fmt: skip
        if rule.level is Level.KNOWN_DEFECT:
            # A defect row only says "this runtime gets it wrong": the behaviour's level and data are the
            # next matching row's, the one that applies where the runtime works.
            base = next((r for r in matching[1:] if r.level is not Level.KNOWN_DEFECT), None)
            if base is None or base.level is Level.NOT_APPLICABLE:
                raise KeyError(f"known defect of {behaviour!r} has no applicable row after it ({rule.scope()})")
            return Expectation(behaviour, Level.KNOWN_DEFECT, rule.source, rule.scope(), rule.reason,
                               dict(base.expected), defect_of=base.level, symptom=rule.symptom)  # fmt: skip
        return Expectation(behaviour, rule.level, rule.source, rule.scope(), rule.reason, dict(rule.expected))
    raise NoRow(
        f"behaviour {behaviour!r} has no row for {decided_by(behaviour)} {kubernetes} with {runtime} "
        f"{runtime_version or '(version unknown)'} and settings {sorted(flags) or 'none'}: the expectation table "
        "must be total from 1.31 on; add a row"
    )
