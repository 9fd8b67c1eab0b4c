"""Declarative descriptions of images and artifacts → deterministic OCI blobs (stdlib only).

The suite cannot pull upstream test images (quay.io/crio/artifact, registry.k8s.io/e2e-test-images/kitten)
offline, so it rebuilds them. A
description must always give the same bytes, and so the same manifest digest, on every machine
of the same architecture: tests and reports can then name artifacts by digest, and a second run
pushes nothing new. Hence: PAX tar layers, entries sorted, mtime 0, explicit modes and owners,
canonical JSON, no timestamps anywhere; layers uncompressed by default, and where a test needs gzip
or zstd, framed around stored (uncompressed) blocks, because what a compressor emits depends on its
build and version, while the stored framing is fixed by RFC 1952 and RFC 8878.
"""

from __future__ import annotations

import hashlib
import io
import json
import platform
import posixpath
import re
import struct
import tarfile
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

MEDIA_TYPE_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_TYPE_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_TYPE_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_TYPE_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
# Docker Image Manifest V2, Schema 2 (what many registries still serve): distribution/distribution
# docs/content/spec/manifest-v2-2.md. Its layers are gzip-compressed tars.
MEDIA_TYPE_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MEDIA_TYPE_DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
MEDIA_TYPE_DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
# Layer compressions and their OCI media type suffixes (image-spec media-types.md).
COMPRESSIONS = {"none": "", "gzip": "+gzip", "zstd": "+zstd"}
MEDIA_TYPE_FORMATS = ("oci", "docker")
MEDIA_TYPE_EMPTY = "application/vnd.oci.empty.v1+json"
MEDIA_TYPE_OCTET_STREAM = "application/octet-stream"
ANNOTATION_TITLE = "org.opencontainers.image.title"
DEFAULT_ARTIFACT_TYPE = "application/vnd.ivc.test.v1"

EMPTY_JSON = b"{}"  # the image-spec's "empty descriptor" content

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"

# platform.machine() → GOARCH, the spelling runtimes compare against when matching platforms.
_GOARCH = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "aarch64": "arm64",
    "arm64": "arm64",
    "armv7l": "arm",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
    "i386": "386",
    "i686": "386",
}

_MEDIA_TYPE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*$")


# --------------------------------------------------------------------------------------------
# Layer entries


@dataclass(frozen=True)
class File:
    """A regular file. Modes are explicit so exec-bit and read-only tests control them."""

    path: str
    content: bytes = b""
    mode: int = 0o644
    uid: int = 0
    gid: int = 0


@dataclass(frozen=True)
class Dir:
    """A directory; give it explicitly only when mode or owner differ from the implicit 0755 root."""

    path: str
    mode: int = 0o755
    uid: int = 0
    gid: int = 0


@dataclass(frozen=True)
class Symlink:
    """A symbolic link; `target` is stored verbatim (absolute targets are allowed, as in real images)."""

    path: str
    target: str
    uid: int = 0
    gid: int = 0


@dataclass(frozen=True)
class Hardlink:
    """A hard link to a `File` of the same layer (tar can only link to an entry it already holds)."""

    path: str
    target: str


@dataclass(frozen=True)
class Whiteout:
    """Hides `path` of the lower layers: written as `<dir>/.wh.<name>` (image-spec layer changesets)."""

    path: str


@dataclass(frozen=True)
class OpaqueDir:
    """Hides everything the lower layers hold below `path`: written as `<path>/.wh..wh..opq`."""

    path: str


Entry = File | Dir | Symlink | Hardlink | Whiteout | OpaqueDir
Layer = tuple[Entry, ...]


# --------------------------------------------------------------------------------------------
# Specs and result


@dataclass(frozen=True)
class ImageSpec:
    """An image-style artifact: a config with rootfs.diff_ids, so both CRI-O and containerd mount it.

    containerd (2.1 to 2.4.2, measured) only mounts image volumes it can unpack, which needs `rootfs.diff_ids`
    (containerd v2.3.7 internal/cri/server/container_image_mount.go mutateImageMount; containerd#11907);
    CRI-O mounts these too. Use this for everything both runtimes must see.
    """

    layers: tuple[Layer | bytes, ...]  # bytes: a prebuilt uncompressed tar (e.g. a Debian root file system)
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    annotations: tuple[tuple[str, str], ...] = ()
    user: str = ""  # config.User, e.g. "65534:65534"; empty: root
    compression: str = "none"  # of every layer: one of COMPRESSIONS
    media_types: str = "oci"  # "oci", or "docker" (Docker Image Manifest V2 Schema 2: gzip layers only)


@dataclass(frozen=True)
class IndexSpec:
    """A multi-platform image index (image-spec image-index.md): one image per platform, each its own
    manifest; a node must pick the one for its own architecture."""

    images: tuple[tuple[str, ImageSpec], ...]  # (GOARCH, image), in the index's order


@dataclass(frozen=True)
class ArtifactSpec:
    """A real OCI artifact (empty config + artifactType): only CRI-O ≥ 1.33 mounts these.

    CRI-O mounts each layer as one file named by its `org.opencontainers.image.title`, so a title
    may contain '/' ("subpath/2") and `image_sub_path` then selects by that prefix (cri-o
    `FilterMountPathsBySubPath`). Newer CRI-O *unpacks* layers whose media type contains ".tar",
    so plain files must not use a tar media type (ORAS's default): the default here is
    application/octet-stream. Files with identical content share one blob; CRI-O keys its
    layer→name map by digest, so give files distinct contents unless that is what a test probes.
    """

    files: tuple[tuple[str, bytes], ...]  # (title, content)
    artifact_type: str = DEFAULT_ARTIFACT_TYPE
    annotations: tuple[tuple[str, str], ...] = ()
    layer_media_type: str = MEDIA_TYPE_OCTET_STREAM  # e.g. "text/plain", as upstream's :subpath uses


@dataclass(frozen=True)
class BuiltImage:
    """Everything a registry needs for one manifest: the manifest bytes exactly as pushed, and its blobs."""

    manifest: bytes
    manifest_digest: str
    media_type: str
    blobs: Mapping[str, bytes] = field(repr=False)  # digest → bytes (config + layers), deduplicated
    # An index's manifests, which a registry must hold (by digest) before the index that names them.
    children: tuple[BuiltImage, ...] = ()

    def __repr__(self) -> str:  # the blobs can be megabytes; a repr must stay one readable line
        return f"BuiltImage(manifest_digest={self.manifest_digest!r}, blobs={len(self.blobs)}, size={self.size()})"

    def size(self) -> int:
        """Bytes a push transfers to an empty registry: manifest plus every distinct blob."""
        return len(self.manifest) + sum(len(blob) for blob in self.blobs.values())


# --------------------------------------------------------------------------------------------
# Public helpers


def digest_of(data: bytes) -> str:
    """The OCI digest string ("sha256:<hex>") of `data`."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical_json(value: object) -> bytes:
    """Sorted keys, compact separators, ASCII: one JSON text per value, so one digest per value."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode()


def host_architecture() -> str:
    """This machine's architecture in GOARCH spelling, as runtimes expect in an image config."""
    machine = platform.machine().lower()
    try:
        return _GOARCH[machine]
    except KeyError:
        raise ValueError(f"unknown machine architecture {machine!r}: pass architecture= to build()") from None


def layer_tar(layer: Layer) -> bytes:
    """Serialise one layer to an uncompressed PAX tar, deterministically.

    Public so that a test can wrap a tree in an artifact layer of its own.
    """
    records = _layer_records(layer)
    buffer = io.BytesIO()
    # encoding fixed so non-ASCII names give the same PAX records whatever the locale.
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT, encoding="utf-8") as tar:
        for record in records:
            info = tarfile.TarInfo(record.name)
            info.type = record.type
            info.mode = record.mode
            info.uid = record.uid
            info.gid = record.gid
            info.uname = ""
            info.gname = ""
            info.mtime = 0
            info.linkname = record.linkname
            if record.type == tarfile.REGTYPE:
                info.size = len(record.content)
                tar.addfile(info, io.BytesIO(record.content))
            else:
                tar.addfile(info)
    return buffer.getvalue()


def content_tag(digest: str) -> str:
    """A tag derived from content, so a changed description never reuses a node's cached copy."""
    return "c-" + digest.split(":", 1)[1][:16]


def build(spec: ImageSpec | IndexSpec | ArtifactSpec, *, architecture: str | None = None) -> BuiltImage:
    """Turn a description into a manifest and its blobs; same description → same digest.

    `architecture` defaults to this machine's; set it when the nodes differ from the pusher.
    """
    if isinstance(spec, ImageSpec):
        return _build_image(spec, architecture or host_architecture())
    if isinstance(spec, IndexSpec):
        return _build_index(spec)
    if isinstance(spec, ArtifactSpec):
        return _build_artifact(spec)
    raise TypeError(f"build() takes an ImageSpec, IndexSpec or ArtifactSpec, not {type(spec).__name__}")


def gzip_stored(data: bytes) -> bytes:
    """`data` as a gzip member (RFC 1952) of stored deflate blocks (RFC 1951 §3.2.4): any gunzip reads it,
    and no compressor's choices are in it, so it is the same bytes on every machine."""
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # deflate, no flags, mtime 0, OS unknown
    chunks = [data[i : i + 0xFFFF] for i in range(0, len(data), 0xFFFF)] or [b""]
    blocks = b"".join(
        bytes([index == len(chunks) - 1]) + struct.pack("<HH", len(chunk), len(chunk) ^ 0xFFFF) + chunk
        for index, chunk in enumerate(chunks)
    )
    return header + blocks + struct.pack("<II", zlib.crc32(data), len(data) & 0xFFFFFFFF)


ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
ZSTD_MAX_BLOCK = 128 * 1024


def zstd_raw(data: bytes) -> bytes:
    """`data` as one zstd frame (RFC 8878) of raw blocks: any zstd decoder reads it, and it is the same bytes
    on every machine. Single segment with an 8-byte content size, no checksum, no dictionary."""
    header = ZSTD_MAGIC + bytes([0b1110_0000]) + struct.pack("<Q", len(data))
    chunks = [data[i : i + ZSTD_MAX_BLOCK] for i in range(0, len(data), ZSTD_MAX_BLOCK)] or [b""]
    blocks = b"".join(
        # Block_Header: Last_Block (bit 0), Block_Type 0 = Raw (bits 1-2), Block_Size (bits 3-23).
        ((len(chunk) << 3) | (index == len(chunks) - 1)).to_bytes(3, "little") + chunk
        for index, chunk in enumerate(chunks)
    )
    return header + blocks


_COMPRESSORS = {"none": lambda data: data, "gzip": gzip_stored, "zstd": zstd_raw}


# --------------------------------------------------------------------------------------------
# Internals


@dataclass(frozen=True)
class _Record:
    """One tar header to write, after validation and expansion of whiteouts and parents."""

    name: str
    type: bytes
    mode: int
    uid: int
    gid: int
    content: bytes = b""
    linkname: str = ""


def _check_path(path: object, what: str) -> str:
    if not isinstance(path, str) or not path:
        raise ValueError(f"{what}: path must be a non-empty string, got {path!r}")
    if "\0" in path:
        raise ValueError(f"{what}: path {path!r} contains a NUL byte")
    if path.startswith("/"):
        raise ValueError(f"{what}: path {path!r} must be relative to the image root (drop the leading '/')")
    if ".." in path.split("/"):
        raise ValueError(f"{what}: path {path!r} must not contain '..'")
    if path == "." or posixpath.normpath(path) != path:
        raise ValueError(f"{what}: path {path!r} is not normalised (write it like 'dir/file')")
    return path


def _check_owner(entry: File | Dir | Symlink) -> None:
    if entry.uid < 0 or entry.gid < 0:
        raise ValueError(f"{entry!r}: uid and gid must be >= 0")


def _check_mode(entry: File | Dir) -> None:
    if not 0 <= entry.mode <= 0o7777:
        raise ValueError(f"{type(entry).__name__} {entry.path!r}: mode {entry.mode:#o} is outside 0..0o7777")


def _check_not_whiteout_name(path: str, what: str) -> None:
    if posixpath.basename(path).startswith(WHITEOUT_PREFIX):
        raise ValueError(f"{what}: name {path!r} is reserved for whiteouts; use Whiteout or OpaqueDir")


def _layer_records(layer: Layer) -> list[_Record]:
    """Validate a layer and expand it into sorted tar records (implicit parents, whiteout names)."""
    if not isinstance(layer, tuple):
        raise TypeError(f"a layer is a tuple of entries, got {type(layer).__name__}")
    records: dict[str, _Record] = {}
    files: dict[str, File] = {}
    hardlinks: list[Hardlink] = []

    def add(record: _Record, what: str) -> None:
        if record.name in records:
            raise ValueError(f"{what}: the layer already has an entry at {record.name!r}")
        records[record.name] = record

    for entry in layer:
        what = f"{type(entry).__name__}({getattr(entry, 'path', '?')!r})"
        if isinstance(entry, File):
            _check_path(entry.path, what)
            _check_not_whiteout_name(entry.path, what)
            _check_mode(entry)
            _check_owner(entry)
            if not isinstance(entry.content, bytes):
                raise TypeError(f"{what}: content must be bytes")
            add(_Record(entry.path, tarfile.REGTYPE, entry.mode, entry.uid, entry.gid, entry.content), what)
            files[entry.path] = entry
        elif isinstance(entry, Dir):
            _check_path(entry.path, what)
            _check_not_whiteout_name(entry.path, what)
            _check_mode(entry)
            _check_owner(entry)
            add(_Record(entry.path, tarfile.DIRTYPE, entry.mode, entry.uid, entry.gid), what)
        elif isinstance(entry, Symlink):
            _check_path(entry.path, what)
            _check_not_whiteout_name(entry.path, what)
            _check_owner(entry)
            if not entry.target or "\0" in entry.target:
                raise ValueError(f"{what}: symlink target must be a non-empty string without NUL")
            add(_Record(entry.path, tarfile.SYMTYPE, 0o777, entry.uid, entry.gid, linkname=entry.target), what)
        elif isinstance(entry, Hardlink):
            _check_path(entry.path, what)
            _check_not_whiteout_name(entry.path, what)
            _check_path(entry.target, f"{what} target")
            hardlinks.append(entry)
        elif isinstance(entry, Whiteout):
            _check_path(entry.path, what)
            _check_not_whiteout_name(entry.path, what)
            parent, name = posixpath.split(entry.path)
            add(_Record(posixpath.join(parent, WHITEOUT_PREFIX + name), tarfile.REGTYPE, 0o644, 0, 0), what)
        elif isinstance(entry, OpaqueDir):
            _check_path(entry.path, what)
            _check_not_whiteout_name(entry.path, what)
            add(_Record(posixpath.join(entry.path, OPAQUE_MARKER), tarfile.REGTYPE, 0o644, 0, 0), what)
        else:
            raise TypeError(f"unknown layer entry {entry!r}: use File, Dir, Symlink, Hardlink, Whiteout or OpaqueDir")

    # Hard links resolve after all files are known; their header repeats the target's metadata.
    for link in hardlinks:
        what = f"Hardlink({link.path!r})"
        target = files.get(link.target)
        if target is None:
            raise ValueError(f"{what}: target {link.target!r} must be a File in the same layer")
        add(_Record(link.path, tarfile.LNKTYPE, target.mode, target.uid, target.gid, linkname=link.target), what)

    # Implicit parents (0755, root), and no entry may live below something that is not a directory.
    for name in list(records):
        parent = posixpath.dirname(name)
        while parent:
            existing = records.get(parent)
            if existing is None:
                records[parent] = _Record(parent, tarfile.DIRTYPE, 0o755, 0, 0)
            elif existing.type != tarfile.DIRTYPE:
                raise ValueError(f"{name!r} is below {parent!r}, which this layer defines as a non-directory")
            parent = posixpath.dirname(parent)

    return _ordered(records.values())


def _ordered(records: Iterable[_Record]) -> list[_Record]:
    """Sort by path components (as GNU tar --sort=name), but emit a hard link only after its target.

    Component order keeps a directory's contents together; the deferral is needed because
    extractors resolve a hard link against entries already written.
    """
    ordered = sorted(records, key=lambda r: r.name.split("/"))
    written: set[str] = set()
    waiting: dict[str, list[_Record]] = {}
    result: list[_Record] = []
    for record in ordered:
        if record.type == tarfile.LNKTYPE and record.linkname not in written:
            waiting.setdefault(record.linkname, []).append(record)
            continue
        result.append(record)
        written.add(record.name)
        for link in waiting.pop(record.name, []):
            result.append(link)
            written.add(link.name)
    return result


def _annotations(pairs: tuple[tuple[str, str], ...], what: str) -> dict[str, str]:
    result: dict[str, str] = {}
    for pair in pairs:
        if len(pair) != 2 or not all(isinstance(part, str) for part in pair) or not pair[0]:
            raise ValueError(f"{what}: annotations are (key, value) string pairs with a non-empty key, got {pair!r}")
        key, value = pair
        if key in result:
            raise ValueError(f"{what}: annotation {key!r} given twice")
        result[key] = value
    return result


def _strings(values: tuple[str, ...], what: str) -> list[str]:
    if not all(isinstance(v, str) for v in values):
        raise ValueError(f"{what} must be a tuple of strings, got {values!r}")
    return list(values)


def _descriptor(media_type: str, data: bytes, annotations: dict[str, str] | None = None) -> dict[str, object]:
    descriptor: dict[str, object] = {"mediaType": media_type, "digest": digest_of(data), "size": len(data)}
    if annotations:
        descriptor["annotations"] = annotations
    return descriptor


def _finish(
    manifest: dict[str, object],
    blobs: dict[str, bytes],
    media_type: str = MEDIA_TYPE_MANIFEST,
    children: tuple[BuiltImage, ...] = (),
) -> BuiltImage:
    raw = canonical_json(manifest)
    return BuiltImage(
        manifest=raw,
        manifest_digest=digest_of(raw),
        media_type=media_type,
        blobs=MappingProxyType(blobs),
        children=children,
    )


def _build_image(spec: ImageSpec, architecture: str) -> BuiltImage:
    if spec.compression not in COMPRESSIONS:
        raise ValueError(f"ImageSpec.compression {spec.compression!r}: choose one of {', '.join(COMPRESSIONS)}")
    if spec.media_types not in MEDIA_TYPE_FORMATS:
        raise ValueError(f"ImageSpec.media_types {spec.media_types!r}: choose one of {', '.join(MEDIA_TYPE_FORMATS)}")
    docker = spec.media_types == "docker"
    if docker and spec.compression != "gzip":
        raise ValueError("Docker Schema 2 layers are gzip tars: give compression='gzip' with media_types='docker'")
    tars = [layer if isinstance(layer, bytes) else layer_tar(layer) for layer in spec.layers]
    # The diff_id is the digest of the uncompressed tar; the blob is what the compression makes of it.
    diff_ids = [digest_of(data) for data in tars]
    layers = [_COMPRESSORS[spec.compression](data) for data in tars]
    config: dict[str, object] = {
        "architecture": architecture,
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }
    process: dict[str, object] = {}
    if spec.entrypoint:
        process["Entrypoint"] = _strings(spec.entrypoint, "entrypoint")
    if spec.cmd:
        process["Cmd"] = _strings(spec.cmd, "cmd")
    if spec.env:
        process["Env"] = _strings(spec.env, "env")
    if spec.user:
        process["User"] = spec.user
    if process:
        config["config"] = process
    config_raw = canonical_json(config)

    blobs = {digest_of(config_raw): config_raw}
    for data in layers:
        blobs.setdefault(digest_of(data), data)
    layer_type = MEDIA_TYPE_DOCKER_LAYER if docker else MEDIA_TYPE_LAYER_TAR + COMPRESSIONS[spec.compression]
    manifest_type = MEDIA_TYPE_DOCKER_MANIFEST if docker else MEDIA_TYPE_MANIFEST
    manifest: dict[str, object] = {
        "schemaVersion": 2,
        "mediaType": manifest_type,
        "config": _descriptor(MEDIA_TYPE_DOCKER_CONFIG if docker else MEDIA_TYPE_CONFIG, config_raw),
        "layers": [_descriptor(layer_type, data) for data in layers],
    }
    annotations = _annotations(spec.annotations, "ImageSpec")
    if annotations:
        if docker:
            raise ValueError("Docker Schema 2 manifests carry no annotations")
        manifest["annotations"] = annotations
    return _finish(manifest, blobs, manifest_type)


def _build_index(spec: IndexSpec) -> BuiltImage:
    if not spec.images:
        raise ValueError("IndexSpec: an index names at least one image")
    architectures = [architecture for architecture, _ in spec.images]
    if len(set(architectures)) != len(architectures) or not set(architectures) <= set(_GOARCH.values()):
        raise ValueError(f"IndexSpec: architectures must be distinct GOARCH names, got {architectures}")
    children = tuple(_build_image(image, architecture) for architecture, image in spec.images)
    manifests = [
        {**_descriptor(child.media_type, child.manifest), "platform": {"architecture": architecture, "os": "linux"}}
        for (architecture, _), child in zip(spec.images, children, strict=True)
    ]
    index = {"schemaVersion": 2, "mediaType": MEDIA_TYPE_INDEX, "manifests": manifests}
    blobs: dict[str, bytes] = {}
    for child in children:
        blobs.update(child.blobs)
    return _finish(index, blobs, MEDIA_TYPE_INDEX, children)


def _build_artifact(spec: ArtifactSpec) -> BuiltImage:
    for what, media_type in (("artifact_type", spec.artifact_type), ("layer_media_type", spec.layer_media_type)):
        if not isinstance(media_type, str) or not _MEDIA_TYPE_RE.match(media_type):
            raise ValueError(f"ArtifactSpec.{what} {media_type!r} is not a media type like 'application/x.y.v1'")
    titles: set[str] = set()
    layers: list[dict[str, object]] = []
    blobs = {digest_of(EMPTY_JSON): EMPTY_JSON}
    for item in spec.files:
        if len(item) != 2:
            raise ValueError(f"ArtifactSpec.files holds (title, content) pairs, got {item!r}")
        title, content = item
        # Titles become mount paths on the node (CRI-O joins them under the volume), so the
        # same rules as layer paths apply; CRI-O would otherwise silently skip the file.
        _check_path(title, "ArtifactSpec file title")
        if title in titles:
            raise ValueError(f"ArtifactSpec: title {title!r} given twice")
        if not isinstance(content, bytes):
            raise TypeError(f"ArtifactSpec file {title!r}: content must be bytes")
        titles.add(title)
        layers.append(_descriptor(spec.layer_media_type, content, {ANNOTATION_TITLE: title}))
        blobs.setdefault(digest_of(content), content)
    manifest: dict[str, object] = {
        "schemaVersion": 2,
        "mediaType": MEDIA_TYPE_MANIFEST,
        "artifactType": spec.artifact_type,
        "config": _descriptor(MEDIA_TYPE_EMPTY, EMPTY_JSON),
        "layers": layers,
    }
    annotations = _annotations(spec.annotations, "ArtifactSpec")
    if annotations:
        manifest["annotations"] = annotations
    return _finish(manifest, blobs)


def write_oci_layout(images: Mapping[str, BuiltImage], directory: Path) -> Path:
    """An OCI image layout (image-spec image-layout.md) holding `images` by ref name, blobs shared.

    What `skopeo copy oci:DIR:REF …` and `ctr images import` read: the suite preloads node images from it.
    """
    blobs = directory / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    manifests = []
    for ref, image in sorted(images.items()):
        for digest, data in [*image.blobs.items(), (image.manifest_digest, image.manifest)]:
            target = blobs / digest.removeprefix("sha256:")
            if not target.exists():
                target.write_bytes(data)
        manifests.append(
            {
                "mediaType": image.media_type,
                "digest": image.manifest_digest,
                "size": len(image.manifest),
                # OCI's name for skopeo, containerd's for `ctr images import` (else it shortens the name).
                "annotations": {"org.opencontainers.image.ref.name": ref, "io.containerd.image.name": ref},
            }
        )
    (directory / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    (directory / "index.json").write_bytes(canonical_json({"schemaVersion": 2, "manifests": manifests}))
    return directory
