"""Deterministic OCI images and artifacts, built from descriptions and pushed to the suite's registry.

`layout` turns a description into bytes (stdlib only), `registry` pushes them, `base_images`
describes the pause and shell images every cluster needs.
"""

from conformance.oci.base_images import (
    PAUSE_REPOSITORY,
    PAUSE_TAG,
    SHELL_REPOSITORY,
    NodeImageError,
    pause_image,
    push_base_images,
    shell_image,
)
from conformance.oci.layout import (
    ArtifactSpec,
    BuiltImage,
    Dir,
    Entry,
    File,
    Hardlink,
    ImageSpec,
    IndexSpec,
    Layer,
    OpaqueDir,
    Symlink,
    Whiteout,
    build,
    canonical_json,
    content_tag,
    digest_of,
    host_architecture,
    layer_tar,
    write_oci_layout,
)
from conformance.oci.registry import RegistryClient, RegistryError, RegistryUnavailable

__all__ = [
    "PAUSE_REPOSITORY",
    "PAUSE_TAG",
    "SHELL_REPOSITORY",
    "ArtifactSpec",
    "BuiltImage",
    "Dir",
    "Entry",
    "File",
    "Hardlink",
    "ImageSpec",
    "IndexSpec",
    "Layer",
    "NodeImageError",
    "OpaqueDir",
    "RegistryClient",
    "RegistryError",
    "RegistryUnavailable",
    "Symlink",
    "Whiteout",
    "build",
    "canonical_json",
    "content_tag",
    "digest_of",
    "host_architecture",
    "layer_tar",
    "pause_image",
    "push_base_images",
    "shell_image",
    "write_oci_layout",
]
