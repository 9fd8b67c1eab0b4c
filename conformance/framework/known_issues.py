"""Known upstream issues: a symptom on a runtime/version range → a hint shown next to a failure.

A hint explains; it never changes a verdict. Matching is on the failure text (assertion message,
waiting message, event) so the hint appears only when the failure looks like the known bug.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from conformance.framework.capabilities import Capabilities
from conformance.framework.expectations import APISERVER_BEHAVIOURS, behaviours, runtime_matches
from conformance.infra.versions import ANY, VersionRange, before, between

SUBPATH_BEHAVIOURS = frozenset(
    {"subpath-directory", "subpath-file", "subpath-expr", "metrics-mount-errors", "subpath-missing"}
)
# Every behaviour that mounts an image volume (file subPath, artifacts, metrics… included).
MOUNT_BEHAVIOURS = behaviours() - APISERVER_BEHAVIOURS


@dataclass(frozen=True)
class KnownIssue:
    behaviours: frozenset[str]
    symptom: re.Pattern[str]
    hint: str
    runtime: str | None = None  # None: any runtime
    runtime_version: VersionRange = ANY
    k8s: VersionRange = ANY

    def matches(self, behaviour: str, failure: str, caps: Capabilities) -> bool:
        if behaviour not in self.behaviours or caps.kubelet_version not in self.k8s:
            return False
        if not runtime_matches(self.runtime, self.runtime_version, caps.runtime_name, caps.runtime_version):
            return False
        return bool(self.symptom.search(failure))


ARTIFACT_BEHAVIOURS = frozenset(b for b in behaviours() if b.startswith("artifact-"))

KNOWN_ISSUES: tuple[KnownIssue, ...] = (
    KnownIssue(
        ARTIFACT_BEHAVIOURS,
        re.compile(r"mounts the artifact as \[\]"),
        "containerd mounts an OCI artifact (empty config) as an empty directory instead of refusing it "
        "(containerd#11907, containerd#11381; seen on 2.1 to 2.4.2)",
        runtime="containerd",
    ),
    KnownIssue(
        frozenset({"metrics-mount-errors"}),
        re.compile(r"mounted_errors_total on \S+ grew by 0"),
        "containerd wraps the mount error as 'failed to mount image volume: ImageVolumeMountFailed: …', and the "
        "kubelet counts an error only for a message that starts with 'ImageVolumeMountFailed' (kubernetes "
        "v1.36.3 kuberuntime_manager.go incrementImageVolumeMetrics; seen on containerd 2.2.9 to 2.4.2; the same "
        "counter's other false successes: kubernetes#138460)",
        runtime="containerd",
    ),
    KnownIssue(
        SUBPATH_BEHAVIOURS,
        re.compile(r"subPath ignored"),
        "containerd 2.1.x ignores image_sub_path and mounts the whole image (containerd#11580, kubernetes#138640; "
        "backport containerd#12298 closed): upgrade to containerd >= 2.2",
        runtime="containerd",
        runtime_version=between("2.1", "2.2"),
    ),
    KnownIssue(
        SUBPATH_BEHAVIOURS,
        re.compile(r"subPath ignored"),
        "CRI-O before 1.33 does not read image_sub_path (added with kubernetes#130135's CRI field, cri-o "
        "fca4ea6223): a kubelet >= 1.33 needs CRI-O >= 1.33",
        runtime="cri-o",
        runtime_version=before("1.33"),
    ),
    KnownIssue(
        MOUNT_BEHAVIOURS,
        re.compile(r"host path is not set|failed to mkdir \"\"|failed to generate spec"),
        "the runtime does not implement CRI Mount.image (containerd < 2.1, cri-dockerd#526): the KEP's "
        "troubleshooting section describes exactly this error",
    ),
    KnownIssue(
        MOUNT_BEHAVIOURS,
        re.compile(r"cannot read /volume|No such file or directory|expected .*saw \[\]"),
        "an empty mount instead of the image: some bundled runtimes without image volume support mount an empty "
        "directory silently (k3s#14323); check the node's runtime version",
    ),
    KnownIssue(
        MOUNT_BEHAVIOURS | SUBPATH_BEHAVIOURS,
        re.compile(r"ImageVolumeMountFailed.*erofs|erofs", re.S),
        "containerd's erofs snapshotter fails image volume mounts (containerd#13534, fixed in 2.3.1)",
        runtime="containerd",
        runtime_version=between("2.3", "2.3.1"),
    ),
)


def hints_for(
    behaviour: str, failure: str, caps: Capabilities, issues: tuple[KnownIssue, ...] = KNOWN_ISSUES
) -> list[str]:
    return [issue.hint for issue in issues if issue.matches(behaviour, failure, caps)]
