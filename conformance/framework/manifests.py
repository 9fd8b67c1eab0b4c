"""Render the Pod templates in `manifests/` with a test's parameters.

Templates use `${param}` placeholders. Values are inserted as JSON scalars (valid YAML, quoted
safely), and any mapping entry whose value ends up null is removed: leaving a parameter as
None is how a test says "this field is unset" (pullPolicy defaulting depends on it).
"""

from __future__ import annotations

import json
import string
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import Any

import yaml

# Package data: the checkout's manifests/ (setuptools maps it to conformance.manifests), in a wheel too.
MANIFESTS_DIR: Traversable = files("conformance.manifests")

LINUX_NODE_LABEL = "kubernetes.io/os"
DEFAULTS: dict[str, Any] = {
    "mount_path": "/volume",
    "pull_policy": None,
    "sub_path": None,
    "sub_path_expr": None,
    "read_only": None,
    "env_value": None,
    "fs_group": None,
    "fs_group_change_policy": None,
    "node_name": None,
    "pull_secrets": None,  # e.g. [{"name": "ivc-pull-secret"}]
    "service_account": None,
}


def _prune_nulls(node: Any) -> Any:
    if isinstance(node, dict):
        return {key: _prune_nulls(value) for key, value in node.items() if value is not None}
    if isinstance(node, list):
        return [_prune_nulls(item) for item in node]
    return node


def render(template: str, manifests_dir: Traversable = MANIFESTS_DIR, **params: Any) -> dict[str, Any]:
    """`render("basic", name=…, shell_image=…, reference=…)` → a Pod as a dict.

    Raises KeyError naming the placeholder when a parameter is missing.
    """
    path = manifests_dir / f"{template}.yaml"
    text = path.read_text()
    values = {key: json.dumps(value) for key, value in (DEFAULTS | params).items()}
    try:
        rendered = string.Template(text).substitute(values)
    except KeyError as missing:
        raise KeyError(f"manifest {path.name} needs parameter {missing}") from None
    body: dict[str, Any] = _prune_nulls(yaml.safe_load(rendered))
    if body.get("kind") == "Pod":
        # Image volumes are a Linux feature (the conformance test is [LinuxOnly]): never a Windows node.
        body["spec"].setdefault("nodeSelector", {})[LINUX_NODE_LABEL] = "linux"
    return body


def templates(manifests_dir: Traversable = MANIFESTS_DIR) -> list[str]:
    return sorted(p.name.removesuffix(".yaml") for p in manifests_dir.iterdir() if p.name.endswith(".yaml"))
