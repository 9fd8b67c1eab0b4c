"""Render the Pod templates in `manifests/` with a test's parameters, and shape the Pods for the cluster.

Templates use `${param}` placeholders. Values are inserted as JSON scalars (valid YAML, quoted
safely), and any mapping entry whose value ends up null is removed: leaving a parameter as
None is how a test says "this field is unset" (pullPolicy defaulting depends on it). A parameter
the template does not have is an error: a misspelled one would otherwise test the default.

Two things every Pod of the suite gets besides its template, applied in one place:
- `secured(pod, level)`: the securityContext of the Pod Security level its namespace enforces
  (restricted by default; the suite's shell image runs as `nobody`);
- `pinned(pod, nodes)`: node affinity to one node group, when the cluster's nodes differ.
"""

from __future__ import annotations

import json
import string
from collections.abc import Sequence
from enum import StrEnum
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import Any

import yaml

# Package data: the checkout's manifests/ (setuptools maps it to conformance.manifests), in a wheel too.
MANIFESTS_DIR: Traversable = files("conformance.manifests")

LINUX_NODE_LABEL = "kubernetes.io/os"
# Values for the placeholders a test leaves out (only those the template has).
DEFAULTS: dict[str, Any] = {
    "mount_path": "/volume",
    "pull_policy": None,
    "sub_path": None,
    "second_sub_path": None,
    "sub_path_expr": None,
    "read_only": None,
    "env_value": None,
    "fs_group": None,
    "fs_group_change_policy": None,
    "node_name": None,
    "pull_secrets": None,  # e.g. [{"name": "ivc-pull-secret"}]
    "service_account": None,
    "host_users": None,
    "bind_mount_options": None,
    "grace_seconds": 0,  # containers exit on SIGTERM anyway; a test of the grace period gives its own
}
CONTAINER_KINDS = ("initContainers", "containers", "ephemeralContainers")


class PodSecurity(StrEnum):
    """Pod Security Standards levels (pod-security.kubernetes.io/enforce)."""

    RESTRICTED = "restricted"
    BASELINE = "baseline"
    PRIVILEGED = "privileged"


def _prune_nulls(node: Any) -> Any:
    if isinstance(node, dict):
        return {key: _prune_nulls(value) for key, value in node.items() if value is not None}
    if isinstance(node, list):
        return [_prune_nulls(item) for item in node]
    return node


def parameters(template: str, manifests_dir: Traversable = MANIFESTS_DIR) -> frozenset[str]:
    """The placeholders of a template: exactly the parameters it takes."""
    text = (manifests_dir / f"{template}.yaml").read_text()
    return frozenset(
        match.group("named") or match.group("braced")
        for match in string.Template.pattern.finditer(text)
        if match.group("named") or match.group("braced")
    )


def render(template: str, manifests_dir: Traversable = MANIFESTS_DIR, **params: Any) -> dict[str, Any]:
    """`render("basic", name=…, shell_image=…, reference=…)` → a Pod as a dict.

    Raises KeyError naming the placeholder when a parameter is missing, TypeError naming the parameter
    when the template has no such placeholder.
    """
    path = manifests_dir / f"{template}.yaml"
    text = path.read_text()
    takes = parameters(template, manifests_dir)
    if unknown := sorted(set(params) - takes):
        raise TypeError(
            f"manifest {path.name} has no parameter {', '.join(unknown)} (it takes: {', '.join(sorted(takes))})"
        )
    values = {
        key: json.dumps(value) for key, value in ({k: v for k, v in DEFAULTS.items() if k in takes} | params).items()
    }
    try:
        rendered = string.Template(text).substitute(values)
    except KeyError as missing:
        raise KeyError(f"manifest {path.name} needs parameter {missing}") from None
    body: dict[str, Any] = _prune_nulls(yaml.safe_load(rendered))
    if body.get("kind") == "Pod":
        # Image volumes are a Linux feature (the conformance test is [LinuxOnly]): never a Windows node.
        body["spec"].setdefault("nodeSelector", {})[LINUX_NODE_LABEL] = "linux"
    return body


def containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    """Every container of the Pod: init (sidecars among them), app and ephemeral ones."""
    return [c for kind in CONTAINER_KINDS for c in pod["spec"].get(kind, [])]


def container_security(level: PodSecurity) -> dict[str, Any]:
    """What each container needs at `level`: nothing beyond baseline, the restricted profile's fields else."""
    if level is PodSecurity.RESTRICTED:
        return {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    return {}


def secured(pod: dict[str, Any], level: PodSecurity) -> dict[str, Any]:
    """The Pod as its namespace's Pod Security level admits it (Pod Security Standards):

    - restricted: non-root (the shell image's own user, `nobody`, so a platform that assigns UIDs
      such as OpenShift can still pick one), RuntimeDefault seccomp, no privilege escalation, no
      capabilities;
    - baseline / privileged: root (uid 0) with the runtime's default capabilities, for tests whose
      observation needs it (a write must meet the read-only mount, not a permission check).
    """
    context = pod["spec"].setdefault("securityContext", {})
    if level is PodSecurity.RESTRICTED:
        context.update(runAsNonRoot=True, seccompProfile={"type": "RuntimeDefault"})
    else:
        context.update(runAsUser=0, runAsGroup=0)
    for container in containers(pod):
        container.setdefault("securityContext", {}).update(container_security(level))
    return pod


def pinned(pod: dict[str, Any], nodes: Sequence[str]) -> dict[str, Any]:
    """The Pod may only run on `nodes` (one node group), by node name: labels such as
    kubernetes.io/hostname need not equal it."""
    term = {"matchFields": [{"key": "metadata.name", "operator": "In", "values": sorted(nodes)}]}
    affinity = pod["spec"].setdefault("affinity", {}).setdefault("nodeAffinity", {})
    affinity["requiredDuringSchedulingIgnoredDuringExecution"] = {"nodeSelectorTerms": [term]}
    return pod


def templates(manifests_dir: Traversable = MANIFESTS_DIR) -> list[str]:
    return sorted(p.name.removesuffix(".yaml") for p in manifests_dir.iterdir() if p.name.endswith(".yaml"))
