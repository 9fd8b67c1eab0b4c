"""The runtime probe: before any test, does each node group's runtime really mount image volumes,
honour subPath, and mount OCI artifacts?

The controller starts the run's shared Pods at session start (shared_pods.py), per node group, among
them one mounting the seed image, one the catalog's OCI artifact and one the seed image with subPath
`dir`; the answer is there as soon as each is decided (Running, or a state it will not leave).

The probe blames only what it saw. "Does not mount image volumes" takes evidence about the image
volume: a refusal whose message names the mount, or a mount that is empty or wrong. A Pod kept from
starting by the registry or the cluster (a pull that kept failing with a network or registry error,
no node to schedule on, a sandbox that could not be created) leaves the answer `blocked`, with that
cause; a Pod that simply never started leaves it `timed out`. Neither says the runtime lacks image
volumes. Whether artifacts mount is probed, not inferred from the runtime's name, so a vendor's
runtime can show it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

SEED_ENTRIES = {"dir", "file"}
SEED_DIR_FILE = "1"
ARTIFACT_ENTRIES = {"artifact.txt", "subpath"}
SUBPATH_ENTRIES = {"file"}  # subPath `dir` of the seed tree


class Seen(StrEnum):
    MOUNTED = "mounted"  # as the image (or artifact) describes it; for subPath: exactly the subtree
    REFUSED = "refused"  # the Pod says why (a mount error naming the volume)
    EMPTY = "silently empty"  # Running, nothing at the mount
    WRONG = "wrong"  # Running, something else at the mount
    IGNORED = "ignored"  # subPath: the image root is mounted instead of the subtree
    BLOCKED = "blocked"  # the registry or the cluster kept the Pod from starting: no verdict on the runtime
    TIMED_OUT = "timed out"  # never started, no cause found: no verdict on the runtime either
    NOT_PROBED = "not probed"


@dataclass(frozen=True)
class Finding:
    seen: Seen
    detail: str = ""

    @property
    def refutes(self) -> bool:
        """Evidence that it does not work: a refusal, an empty or a wrong mount, an ignored subPath."""
        return self.seen in (Seen.REFUSED, Seen.EMPTY, Seen.WRONG, Seen.IGNORED)

    @property
    def undetermined(self) -> bool:
        return self.seen in (Seen.BLOCKED, Seen.TIMED_OUT)

    def __str__(self) -> str:
        return f"{self.seen}: {self.detail}" if self.detail else str(self.seen)

    @classmethod
    def parse(cls, text: str) -> Finding:
        seen, _, detail = text.partition(": ")
        return cls(Seen(seen), detail)


@dataclass(frozen=True)
class MountProbe:
    image_volume: Finding
    artifact: Finding
    sub_path: Finding = Finding(Seen.NOT_PROBED)

    @property
    def image_volumes_mount(self) -> bool:
        return self.image_volume.seen is Seen.MOUNTED

    @property
    def artifacts_mount(self) -> bool:
        return self.artifact.seen is Seen.MOUNTED

    def summary(self) -> str:
        return f"image volume {self.image_volume}; subPath {self.sub_path}; OCI artifact {self.artifact}"

    def as_dict(self) -> dict[str, Any]:
        return {"image_volume": str(self.image_volume), "artifact": str(self.artifact), "sub_path": str(self.sub_path)}

    @classmethod
    def from_dict(cls, raw: dict[str, str]) -> MountProbe:
        return cls(**{key: Finding.parse(value) for key, value in raw.items()})


@dataclass(frozen=True)
class Outcome:
    """What became of one probe Pod: Running with what it listed, refused, or kept from starting."""

    entries: set[str] | None = None  # `ls -A` of the mount, when Running
    content: str = ""  # dir/file (or file, under subPath dir), when Running
    refused: str | None = None  # the mount error
    blocked: str | None = None  # the registry's or the cluster's fault
    timed_out: str | None = None


def _not_running(outcome: Outcome) -> Finding | None:
    if outcome.refused is not None:
        return Finding(Seen.REFUSED, outcome.refused.splitlines()[0])
    if outcome.blocked is not None:
        return Finding(Seen.BLOCKED, outcome.blocked.splitlines()[0])
    if outcome.timed_out is not None or outcome.entries is None:
        return Finding(Seen.TIMED_OUT, (outcome.timed_out or "").splitlines()[0] if outcome.timed_out else "")
    return None


def image_volume_finding(seed: Outcome) -> Finding:
    if (finding := _not_running(seed)) is not None:
        return finding
    assert seed.entries is not None
    if not seed.entries:
        return Finding(Seen.EMPTY, "the seed image's volume is mounted empty (the runtime ignored the image mount)")
    if seed.entries != SEED_ENTRIES or seed.content != SEED_DIR_FILE:
        return Finding(
            Seen.WRONG,
            f"the seed image's volume shows {sorted(seed.entries)} with dir/file = {seed.content!r}, "
            f"not {sorted(SEED_ENTRIES)} and {SEED_DIR_FILE!r}",
        )
    return Finding(Seen.MOUNTED)


def artifact_finding(artifact: Outcome) -> Finding:
    if (finding := _not_running(artifact)) is not None:
        return finding
    if artifact.entries == ARTIFACT_ENTRIES:
        return Finding(Seen.MOUNTED)
    assert artifact.entries is not None
    seen = Seen.EMPTY if not artifact.entries else Seen.WRONG
    return Finding(seen, f"the Pod runs, /volume shows {sorted(artifact.entries)}")


def sub_path_finding(sub_path: Outcome | None) -> Finding:
    if sub_path is None:
        return Finding(Seen.NOT_PROBED, "the API rejects subPath on image volumes before Kubernetes 1.33")
    if (finding := _not_running(sub_path)) is not None:
        return finding
    if sub_path.entries == SUBPATH_ENTRIES and sub_path.content == SEED_DIR_FILE:
        return Finding(Seen.MOUNTED, "exactly subPath dir")
    assert sub_path.entries is not None
    if sub_path.entries == SEED_ENTRIES:
        return Finding(Seen.IGNORED, "subPath dir: the image root is mounted instead")
    return Finding(Seen.WRONG, f"subPath dir shows {sorted(sub_path.entries)} with file = {sub_path.content!r}")


def probe(seed: Outcome, artifact: Outcome, sub_path: Outcome | None) -> MountProbe:
    """The findings of one node group's probe Pods."""
    return MountProbe(
        image_volume=image_volume_finding(seed),
        artifact=artifact_finding(artifact),
        sub_path=sub_path_finding(sub_path),
    )
