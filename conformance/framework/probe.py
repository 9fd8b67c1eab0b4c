"""The runtime probe: before any test, does the runtime really mount image volumes — and OCI artifacts?

The controller starts the run's shared Pods at session start (shared_pods.py), among them one
mounting the seed image and one the catalog's OCI artifact, and the answer is there as soon as each
is decided (Running, or a state it will not leave). A runtime that cannot mount image volumes at all
(an error, or an empty or wrong mount) gives one verdict that names what was seen, and every other
test is skipped with it, within about one Pod start instead of minutes of timeouts. Whether
artifacts mount is probed, not inferred from the runtime's name, so a vendor's runtime can show it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from conformance.framework.kube import Kube
from conformance.framework.pods import PodUnderTest
from conformance.framework.shared_pods import Started

MOUNTED = "mounted"
ARTIFACT_ENTRIES = {"artifact.txt", "subpath"}


@dataclass(frozen=True)
class MountProbe:
    image_volume: str  # MOUNTED, or what was seen instead
    artifact: str  # MOUNTED, "refused: …" or "silently empty: …"

    @property
    def image_volumes_mount(self) -> bool:
        return self.image_volume == MOUNTED

    @property
    def artifacts_mount(self) -> bool:
        return self.artifact == MOUNTED

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _listing(kube: Kube, namespace: str, name: str) -> tuple[set[str], str]:
    listed, content = PodUnderTest(kube, namespace, name).sh_each(["ls -A /volume", "cat /volume/dir/file 2>/dev/null"])
    return set(listed.stdout.split()), content.stdout


def probe_mounts(kube: Kube, namespace: str, seed: Started, artifact: Started) -> MountProbe:
    """What the two started Pods (the seed image's and the artifact's) show."""
    return MountProbe(image_volume=_image_volume(kube, namespace, seed), artifact=_artifact(kube, namespace, artifact))


def _image_volume(kube: Kube, namespace: str, seed: Started) -> str:
    if seed.error is not None:
        return f"a Pod mounting the seed image failed: {seed.error.splitlines()[0]}"
    entries, content = _listing(kube, namespace, seed.name)
    if not entries:
        return "the seed image's volume is mounted empty (the runtime ignored the image mount)"
    if entries != {"dir", "file"} or content != "1":
        return f"the seed image's volume shows {sorted(entries)} with dir/file = {content!r}, not [dir, file] and '1'"
    return MOUNTED


def _artifact(kube: Kube, namespace: str, artifact: Started) -> str:
    if artifact.error is not None:
        return f"refused: {artifact.error.splitlines()[0]}"
    entries, _ = _listing(kube, namespace, artifact.name)
    if entries == ARTIFACT_ENTRIES:
        return MOUNTED
    return f"silently empty: the Pod runs, /volume shows {sorted(entries)}"
