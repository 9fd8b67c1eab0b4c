"""Feature gates: the `--feature-gates` syntax and the per-version ImageVolume rule, for every provider.

The rule (kubernetes pkg/features/kube_features.go, ImageVolume, v1.31-v1.38): the gate must be
switched on below 1.36 (alpha off in 1.31-1.32, beta off in 1.33-1.34; harmless on 1.35, where it
is on by default); from 1.36 it is GA and locked, so `ImageVolume=false` makes every component
exit at start ("cannot set feature gate ImageVolume to false, feature is locked to true") and
`=true` is never passed (the gate is removed in 1.39, and an unknown gate is fatal). Providers
call `gates_for` before building anything.
"""

from __future__ import annotations

from collections.abc import Mapping

from conformance.infra.errors import ClusterError
from conformance.infra.versions import Version

IMAGE_VOLUME = "ImageVolume"
INTRODUCED = Version(1, 31)  # VolumeSource.Image exists from 1.31 (alpha)
LOCKED = Version(1, 36)  # GA, LockToDefault


def parse_feature_gates(text: str) -> dict[str, bool]:
    """`"ImageVolume=false,Foo=true"` → `{"ImageVolume": False, "Foo": True}`."""
    gates: dict[str, bool] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or value.strip().lower() not in ("true", "false"):
            raise ClusterError(f"feature gate {item!r} is not NAME=true|false (e.g. ImageVolume=false)")
        gates[name.strip()] = value.strip().lower() == "true"
    return gates


def gates_for(k8s_version: str, requested: Mapping[str, bool] | None = None) -> dict[str, bool]:
    """The gates to pass to every component of a cluster at `k8s_version` (explicit gates win)."""
    version = Version.parse(k8s_version)
    if version < INTRODUCED:
        raise ClusterError(f"Kubernetes {k8s_version} has no image volumes: pick --k8s-version v1.31 or newer")
    locked = version >= LOCKED
    gates: dict[str, bool] = {} if locked else {IMAGE_VOLUME: True}
    for gate, enabled in (requested or {}).items():
        if gate == IMAGE_VOLUME and locked:
            if not enabled:
                raise ClusterError(
                    f"ImageVolume is GA and locked on in Kubernetes {k8s_version} (the components would exit with "
                    "'feature is locked to true'): to test the gate off, pick --k8s-version v1.35.x or older"
                )
            continue
        gates[gate] = enabled
    return dict(sorted(gates.items()))


def flag(gates: Mapping[str, bool]) -> list[str]:
    """`--feature-gates=A=true,B=false`, or nothing."""
    if not gates:
        return []
    return ["--feature-gates=" + ",".join(f"{k}={str(v).lower()}" for k, v in sorted(gates.items()))]
