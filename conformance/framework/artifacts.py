"""The suite's named test artifacts, as data. Built deterministically and pushed once per run.

`seed` is the tree of the upstream `quay.io/crio/artifact:v1/v2` used by every upstream suite
(`dir/file` = 1, `file` = 2), rebuilt here so no outside registry is ever needed.

A catalog entry is a spec, or a function returning one when building it is expensive (the large
file): collection and unit tests never pay for it, only a run that pushes the catalog does.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass

from conformance.oci import (
    PAUSE_REPOSITORY,
    PAUSE_TAG,
    SHELL_REPOSITORY,
    ArtifactSpec,
    Dir,
    File,
    Hardlink,
    ImageSpec,
    IndexSpec,
    OpaqueDir,
    RegistryClient,
    Symlink,
    Whiteout,
    build,
    content_tag,
    host_architecture,
)

SHARED_REPOSITORY_PREFIX = "ivc/artifacts"

EXEC_SCRIPT = b"#!/bin/sh\necho executed-from-volume\n"

MANY_SMALL_FILES = 500
# >= 64 MiB, with an odd tail so a copy truncated at a page or block boundary shows in the digest.
LARGE_FILE_SIZE = 64 * 1024 * 1024 + 4097
LARGE_FILE_SHA256 = "ba1c379eb36b66a3805eba8e96e3b6a09a5d27dc23da5b58388c8c6fe68a94bc"  # tests/ check it


def _layered() -> ImageSpec:
    """Four layers whose merge exercises what a runtime's layer application must get right
    (image-spec layer changesets; KEP: "overwritten from the higher indexed layer")."""
    base = (
        File("override.txt", b"from layer 0"),
        File("whiteout/file.txt", b"hidden by a whiteout"),
        File("whiteout/dir/inner.txt", b"hidden with its directory"),
        File("whiteout/kept.txt", b"kept"),
        File("opaque/lower.txt", b"hidden by the opaque marker"),
        File("opaque/lower-dir/inner.txt", b"hidden by the opaque marker"),
    )
    changes = (
        File("override.txt", b"from layer 1"),
        Whiteout("whiteout/file.txt"),
        Whiteout("whiteout/dir"),
        OpaqueDir("opaque"),
        File("opaque/upper.txt", b"from the opaque layer"),
    )
    metadata = (
        File("override.txt", b"from layer 2"),
        File("links/target.txt", b"link target"),
        Symlink("links/relative", "target.txt"),
        Symlink("links/parent", "../override.txt"),
        Symlink("links/absolute", "/links/target.txt"),  # resolved against the container root, not the volume
        Hardlink("links/hardlink", "links/target.txt"),
        File("modes/file-750", b"750", mode=0o750),
        File("modes/file-600", b"600", mode=0o600),
        File("modes/file-644", b"644", mode=0o644),
        Dir("modes/dir-755", mode=0o755),
        Dir("modes/dir-700", mode=0o700),
        File("owners/owned.txt", b"owned", uid=1234, gid=5678),
        Dir("owners/owned-dir", uid=1234, gid=5678),
        File("owners/root.txt", b"root"),
        Dir("empty"),
        File("unicode/grüße.txt", "grüße".encode()),
        File("unicode/日本語.txt", "日本語".encode()),
        File("unicode/emoji-🙂.txt", "🙂".encode()),
    )
    many = tuple(File(f"many/{i:03d}", f"small file {i}".encode()) for i in range(MANY_SMALL_FILES))
    return ImageSpec(layers=(base, changes, metadata, many))


@functools.cache
def large_file_content() -> bytes:
    """Deterministic incompressible bytes; SHAKE-256 output is fixed by its standard, unlike
    `random` streams, which Python does not promise to keep across versions."""
    return hashlib.shake_256(b"ivc large image volume file").digest(LARGE_FILE_SIZE)


def _large() -> ImageSpec:
    return ImageSpec(layers=((File("large.bin", large_file_content()),),))


SEED_LAYERS = ((Dir("dir"), File("dir/file", b"1")), (File("file", b"2"),))
# Every format variant adds a file naming it, so its layers are its own (a runtime that already holds the
# seed's layers must still fetch and unpack these) and the test sees which image it got.
FORMATS = {
    "seed-gzip": {"compression": "gzip"},
    "seed-zstd": {"compression": "zstd"},
    "seed-docker": {"compression": "gzip", "media_types": "docker"},
    "no-process-config": {},
    "entrypoint-not-in-image": {"entrypoint": ("/no/such/program",), "cmd": ("--serve",)},
}


def _format(name: str) -> ImageSpec:
    options = FORMATS[name]
    return ImageSpec(layers=(*SEED_LAYERS, (File("format", name.encode()),)), **options)  # type: ignore[arg-type]


MANY_LAYERS = 120  # overlay mount options grow with every lower layer; 4 KiB of them ends a naive mount


def _many_layers() -> ImageSpec:
    """One file per layer, and `top` rewritten by every one: the highest layer's must win."""
    return ImageSpec(layers=tuple((File(f"layers/{i:03d}", f"{i}".encode()), File("top", f"layer {i}".encode()))
                                  for i in range(MANY_LAYERS)))  # fmt: skip


# The other architectures an index names (GOARCH); the node's own comes last, so a runtime that takes the
# first entry instead of matching its platform mounts another architecture's content.
OTHER_ARCHITECTURES = ("arm64", "s390x", "ppc64le", "amd64")


def _multi_platform() -> IndexSpec:
    own = host_architecture()
    others = [arch for arch in OTHER_ARCHITECTURES if arch != own][:2]
    return IndexSpec(
        images=tuple(
            (arch, ImageSpec(layers=((File("platform", arch.encode()), File(f"only-{arch}", arch.encode())),)))
            for arch in (*others, own)
        )
    )


def platform_tree() -> dict[str, str]:
    """What the node must see of `multi-platform`: its own architecture's image."""
    own = host_architecture()
    return {"platform": own, f"only-{own}": own}


# A subPath that is a symlink pointing out of the image must never show the node's files: refused, or
# resolved inside the image (to its own etc/).
INSIDE_IMAGE = {"inside-image": "this etc/ is the image's own"}
SYMLINK_ESCAPES = {"absolute": "/etc", "relative": "../../../../../../../../etc"}


def _symlink_escape() -> ImageSpec:
    links = tuple(Symlink(f"escape-{form}", target) for form, target in SYMLINK_ESCAPES.items())
    inside = tuple(File(f"etc/{name}", content.encode()) for name, content in INSIDE_IMAGE.items())
    return ImageSpec(layers=((*inside, *links),))


Spec = ImageSpec | IndexSpec | ArtifactSpec
CatalogEntry = Spec | Callable[[], Spec]

CATALOG: dict[str, CatalogEntry] = {
    # Two layers like the upstream artifact: `dir/` then `file`.
    "seed": ImageSpec(layers=((Dir("dir"), File("dir/file", b"1")), (File("file", b"2"),))),
    # The same tree with other bytes: what a moved tag points at.
    "seed-moved": ImageSpec(layers=((Dir("dir"), File("dir/file", b"moved-1")), (File("file", b"moved-2"),))),
    # An executable script, to observe (never require) noexec.
    "exec": ImageSpec(layers=((File("bin/hello.sh", EXEC_SCRIPT, mode=0o755), File("data.txt", b"data")),)),
    # Layer merge, whiteouts, opaque directories, links, modes, owners, many and non-ASCII names.
    "layered": _layered(),
    # One file >= 64 MiB: built only when pushed.
    "large": _large,
    # A real OCI artifact (empty config), the tree of upstream's quay.io/crio/artifact:singlefile
    # and :subpath (cri-o v1.36.3 test/testdata/artifacts/push-oci-artifacts); each title becomes a path
    # below the mount on CRI-O.
    "artifact": ArtifactSpec(files=(("artifact.txt", b"hello artifact"), ("subpath/2", b"2"), ("subpath/3", b"3"))),
    # Formats real registries serve: the seed tree with other layer compressions and media types, and
    # configs that describe no runnable process.
    **{name: functools.partial(_format, name) for name in FORMATS},
    "many-layers": _many_layers,
    "multi-platform": _multi_platform,
    "symlink-escape": _symlink_escape(),
}


def spec_of(name_or_entry: str | CatalogEntry) -> Spec:
    """The spec of a catalog entry (by name or as stored), building lazy entries on demand."""
    entry = CATALOG[name_or_entry] if isinstance(name_or_entry, str) else name_or_entry
    return entry if isinstance(entry, ImageSpec | IndexSpec | ArtifactSpec) else entry()


# What a container must see at the mount of each simple catalog entry: path → content.
EXPECTED_TREES: dict[str, dict[str, str]] = {
    "seed": {"dir/file": "1", "file": "2"},
    **{name: {"dir/file": "1", "file": "2", "format": name} for name in FORMATS},
    "many-layers": {"top": f"layer {MANY_LAYERS - 1}", **{f"layers/{i:03d}": f"{i}" for i in range(MANY_LAYERS)}},
    "seed-moved": {"dir/file": "moved-1", "file": "moved-2"},
    "exec": {"bin/hello.sh": EXEC_SCRIPT.decode(), "data.txt": "data"},
}


@dataclass(frozen=True)
class PushedArtifact:
    name: str
    repository: str  # without host
    tag: str
    digest: str
    pull_host: str

    @property
    def reference(self) -> str:
        """By tag, as Pods normally reference it."""
        return f"{self.pull_host}/{self.repository}:{self.tag}"

    @property
    def by_digest(self) -> str:
        return f"{self.pull_host}/{self.repository}@{self.digest}"

    @property
    def by_tag_and_digest(self) -> str:
        """`repo:tag@sha256:…`: the digest decides what is pulled, the tag is informative only."""
        return f"{self.pull_host}/{self.repository}:{self.tag}@{self.digest}"

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def push_named(
    client: RegistryClient, name: str, spec: Spec, repository: str, tag: str | None = None
) -> PushedArtifact:
    built = build(spec)
    tag = tag or content_tag(built.manifest_digest)
    digest = client.push(built, repository, tag)
    return PushedArtifact(name=name, repository=repository, tag=tag, digest=digest, pull_host=client.endpoint.pull)


def push_catalog(client: RegistryClient, catalog: Mapping[str, CatalogEntry] = CATALOG) -> dict[str, PushedArtifact]:
    return {
        name: push_named(client, name, spec_of(entry), f"{SHARED_REPOSITORY_PREFIX}/{name}")
        for name, entry in catalog.items()
    }


def private_repository(run_id: str, nodeid: str) -> str:
    """A repository no other test (or parallel worker) touches: for tests that move tags or need
    an image the node has never pulled."""
    digest = hashlib.sha256(nodeid.encode()).hexdigest()[:12]
    return f"ivc/run-{run_id}/t-{digest}"


def print_artifact_list(registry: str) -> None:
    """Everything a run pushes, so an air-gapped user can pre-seed a registry (offline: nothing is built
    but the catalog's descriptions)."""
    print(f"{registry}/{SHELL_REPOSITORY}:c-…  (container image: static busybox; tagged by its content digest, "
          "which --push-artifacts computes from this machine's busybox build)")  # fmt: skip
    print(f"{registry}/{PAUSE_REPOSITORY}:{PAUSE_TAG}  (sandbox image, local provider only)")
    for name, entry in CATALOG.items():
        built = build(spec_of(entry))
        print(
            f"{registry}/{SHARED_REPOSITORY_PREFIX}/{name}:{content_tag(built.manifest_digest)}  "
            f"({built.manifest_digest}, {built.size()} bytes)"
        )
    print("plus per-test repositories under ivc/run-<run id>/ (pushed and deleted by the tests themselves)")
