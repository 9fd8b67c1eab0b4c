"""The runtime probe: before any test, does the runtime really mount image volumes — and OCI artifacts?

The controller starts two Pods at session start, one mounting the seed image and one the catalog's
OCI artifact, and waits until each is decided (Running, or a state it will not leave). A runtime that
cannot mount image volumes at all (an error, or an empty or wrong mount) gives one verdict that names
what was seen, and every other test is skipped with it, within about one Pod start instead of minutes
of timeouts. Whether artifacts mount is probed, not inferred from the runtime's name, so a vendor's
runtime can show it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from conformance.framework.kube import Json, Kube, WaitTimeout, final_failure, is_running

MOUNTED = "mounted"
# For a probe every pull or create error is decided: the suite's own registry serves both references
# and its shell image runs everywhere, so the error can only be the image volume's. (A runtime without
# image volume support fails CreateContainer with "failed to mkdir \"\"": KEP-4639 troubleshooting.)
PROBE_FAILURES = frozenset({"ErrImagePull", "ImagePullBackOff", "CreateContainerError", "RunContainerError"})
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


def _pod(name: str, shell_image: str, reference: str) -> Json:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "terminationGracePeriodSeconds": 0,
            "dnsPolicy": "Default",  # as the manifests: no cluster DNS needed
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "containers": [
                {
                    "name": "main",
                    "image": shell_image,
                    "command": ["/bin/sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"],
                    "volumeMounts": [{"name": "probe", "mountPath": "/volume"}],
                }
            ],
            "volumes": [{"name": "probe", "image": {"reference": reference, "pullPolicy": "IfNotPresent"}}],
        },
    }


def _failure(pod: Json) -> str | None:
    if (final := final_failure(pod)) is not None:
        return final
    for cs in pod.get("status", {}).get("containerStatuses", []):
        waiting = cs.get("state", {}).get("waiting", {})
        if waiting.get("reason") in PROBE_FAILURES:
            return f"{waiting['reason']}: {waiting.get('message', '')}"
    return None


def _decided(kube: Kube, namespace: str, name: str, timeout: float) -> Json:
    try:
        return kube.wait_for_pod(
            namespace, name, lambda pod: is_running(pod) or _failure(pod) is not None,
            what=f"probe Pod {name} to run or fail", timeout=timeout,
        )  # fmt: skip
    except WaitTimeout as error:
        raise _Undecided(str(error).splitlines()[0]) from None


class _Undecided(Exception):
    pass


def _listing(kube: Kube, namespace: str, name: str) -> tuple[set[str], str]:
    listed = kube.exec(namespace, name, ["/bin/sh", "-c", "ls -A /volume"], "main")
    content = kube.exec(namespace, name, ["/bin/sh", "-c", "cat /volume/dir/file 2>/dev/null"], "main")
    return set(listed.stdout.split()), content.stdout


def probe_mounts(kube: Kube, namespace: str, shell_image: str, seed: str, artifact: str, timeout: float) -> MountProbe:
    """Both probe Pods start together; the answer comes as soon as both are decided."""
    kube.create_pod(namespace, _pod("image-volume", shell_image, seed))
    kube.create_pod(namespace, _pod("artifact", shell_image, artifact))
    return MountProbe(
        image_volume=_image_volume(kube, namespace, timeout), artifact=_artifact(kube, namespace, timeout)
    )


def _image_volume(kube: Kube, namespace: str, timeout: float) -> str:
    try:
        pod = _decided(kube, namespace, "image-volume", timeout)
    except _Undecided as error:
        return f"a Pod mounting the seed image did not start: {error}"
    if not is_running(pod):
        return f"a Pod mounting the seed image failed: {_failure(pod)}"
    entries, content = _listing(kube, namespace, "image-volume")
    if not entries:
        return "the seed image's volume is mounted empty (the runtime ignored the image mount)"
    if entries != {"dir", "file"} or content != "1":
        return f"the seed image's volume shows {sorted(entries)} with dir/file = {content!r}, not [dir, file] and '1'"
    return MOUNTED


def _artifact(kube: Kube, namespace: str, timeout: float) -> str:
    try:
        pod = _decided(kube, namespace, "artifact", timeout)
    except _Undecided as error:
        return f"refused: the Pod did not start ({error})"
    if not is_running(pod):
        return f"refused: {_failure(pod)}"
    entries, _ = _listing(kube, namespace, "artifact")
    if entries == ARTIFACT_ENTRIES:
        return MOUNTED
    return f"silently empty: the Pod runs, /volume shows {sorted(entries)}"
