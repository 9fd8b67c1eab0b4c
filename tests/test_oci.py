"""Unit tests of the deterministic OCI builder and the node image descriptions (no cluster, no network)."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
from pathlib import Path

import pytest

from conformance.oci import base_images
from conformance.oci.endpoint import RegistryEndpoint
from conformance.oci.layout import (
    ANNOTATION_TITLE,
    EMPTY_JSON,
    MEDIA_TYPE_CONFIG,
    MEDIA_TYPE_EMPTY,
    MEDIA_TYPE_LAYER_TAR,
    MEDIA_TYPE_MANIFEST,
    ArtifactSpec,
    BuiltImage,
    Dir,
    File,
    Hardlink,
    ImageSpec,
    OpaqueDir,
    Symlink,
    Whiteout,
    build,
    canonical_json,
    content_tag,
    digest_of,
    host_architecture,
    layer_tar,
)

# The tree of upstream's quay.io/crio/artifact:v2, used as the typical image.
SEED = ImageSpec(layers=((File("dir/file", b"1\n"), File("file", b"2\n")),))
EMPTY_JSON_DIGEST = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"


def manifest_of(image: BuiltImage) -> dict:
    return json.loads(image.manifest)


def config_of(image: BuiltImage) -> dict:
    return json.loads(image.blobs[manifest_of(image)["config"]["digest"]])


def members(image: BuiltImage, index: int = 0) -> list[tarfile.TarInfo]:
    digest = manifest_of(image)["layers"][index]["digest"]
    with tarfile.open(fileobj=io.BytesIO(image.blobs[digest])) as tar:
        return tar.getmembers()


def by_name(infos: list[tarfile.TarInfo]) -> dict[str, tarfile.TarInfo]:
    return {info.name: info for info in infos}


# --------------------------------------------------------------------------------------------
# determinism


def test_same_description_gives_same_bytes_and_digest() -> None:
    first, second = build(SEED), build(ImageSpec(layers=((File("dir/file", b"1\n"), File("file", b"2\n")),)))
    assert first.manifest == second.manifest
    assert first.manifest_digest == second.manifest_digest == digest_of(first.manifest)
    assert dict(first.blobs) == dict(second.blobs)


def test_entry_order_does_not_matter() -> None:
    shuffled = ImageSpec(layers=((File("file", b"2\n"), File("dir/file", b"1\n")),))
    assert build(shuffled).manifest_digest == build(SEED).manifest_digest


@pytest.mark.parametrize(
    "changed",
    [
        File("dir/file", b"1\n", mode=0o755),
        File("dir/file", b"1\n", uid=1000),
        File("dir/file", b"1\n", gid=1000),
        File("dir/file", b"one\n"),
        File("dir/other", b"1\n"),
    ],
    ids=["mode", "uid", "gid", "content", "path"],
)
def test_any_metadata_change_changes_the_digest(changed: File) -> None:
    variant = ImageSpec(layers=((changed, File("file", b"2\n")),))
    assert build(variant).manifest_digest != build(SEED).manifest_digest


@pytest.mark.parametrize(
    "variant",
    [
        ImageSpec(layers=SEED.layers, entrypoint=("/bin/sh",)),
        ImageSpec(layers=SEED.layers, cmd=("true",)),
        ImageSpec(layers=SEED.layers, env=("A=1",)),
        ImageSpec(layers=SEED.layers, annotations=(("a", "b"),)),
    ],
    ids=["entrypoint", "cmd", "env", "annotations"],
)
def test_config_and_annotations_change_the_digest(variant: ImageSpec) -> None:
    assert build(variant).manifest_digest != build(SEED).manifest_digest


def test_json_is_canonical() -> None:
    image = build(ImageSpec(layers=SEED.layers, entrypoint=("/bin/sh",), annotations=(("z", "1"), ("a", "2"))))
    for raw in (image.manifest, image.blobs[manifest_of(image)["config"]["digest"]]):
        assert raw == canonical_json(json.loads(raw))
        assert b": " not in raw and b", " not in raw
    assert list(manifest_of(image)["annotations"]) == ["a", "z"]


# --------------------------------------------------------------------------------------------
# tar layers


def test_layer_is_uncompressed_pax_tar_sorted_with_implicit_parents() -> None:
    layer = (
        File("usr/share/b", b"b"),
        File("etc/passwd", b"root:x:0:0::/:/bin/sh\n"),
        File("usr/bin/tool", b"#!/bin/sh\n", mode=0o755),
        File("usr-local", b"x"),
    )
    data = layer_tar(layer)
    assert data[257:263] == b"ustar\x00"  # POSIX ustar/PAX magic: no gzip, no GNU headers
    assert len(data) % 10240 == 0
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        infos = tar.getmembers()
    names = [info.name for info in infos]
    # Sorted by path component, parents first, contents of a directory together.
    assert names == ["etc", "etc/passwd", "usr", "usr/bin", "usr/bin/tool", "usr/share", "usr/share/b", "usr-local"]
    for info in infos:
        assert (info.mtime, info.uname, info.gname) == (0, "", "")
    entries = by_name(infos)
    assert entries["usr/bin"].isdir() and entries["usr/bin"].mode == 0o755
    assert (entries["usr/bin"].uid, entries["usr/bin"].gid) == (0, 0)
    assert entries["usr/bin/tool"].mode == 0o755
    assert entries["etc/passwd"].mode == 0o644


def test_explicit_modes_and_owners_are_kept() -> None:
    layer = (
        Dir("tmp", mode=0o1777),
        Dir("home/user", mode=0o700, uid=1000, gid=1001),
        File("home/user/secret", b"s", mode=0o400, uid=1000, gid=1001),
        File("bin/setuid", b"x", mode=0o4755),
        Symlink("home/user/link", "secret", uid=1000, gid=1001),
    )
    entries = by_name(members(build(ImageSpec(layers=(layer,)))))
    assert entries["tmp"].mode == 0o1777
    assert (entries["home/user"].mode, entries["home/user"].uid, entries["home/user"].gid) == (0o700, 1000, 1001)
    assert (entries["home/user/secret"].mode, entries["home/user/secret"].uid) == (0o400, 1000)
    assert entries["bin/setuid"].mode == 0o4755
    assert entries["home"].mode == 0o755  # implicit parent
    link = entries["home/user/link"]
    assert link.issym() and link.linkname == "secret" and (link.uid, link.gid) == (1000, 1001)


def test_symlink_hardlink_whiteout_and_opaque_entries() -> None:
    layer = (
        Symlink("bin/sh", "/bin/busybox"),
        Hardlink("a/link", target="z/data"),  # sorts before its target: must be emitted after it
        File("z/data", b"payload", mode=0o640, uid=7),
        Whiteout("etc/removed"),
        Whiteout("gone"),
        OpaqueDir("var/cache"),
    )
    infos = members(build(ImageSpec(layers=(layer,))))
    names = [info.name for info in infos]
    entries = by_name(infos)
    assert entries["bin/sh"].issym() and entries["bin/sh"].linkname == "/bin/busybox"
    link = entries["a/link"]
    assert link.islnk() and link.linkname == "z/data" and link.size == 0
    assert (link.mode, link.uid) == (0o640, 7)  # the header repeats the target's metadata
    assert names.index("z/data") < names.index("a/link")
    assert entries["etc/.wh.removed"].isfile() and entries["etc/.wh.removed"].size == 0
    assert entries[".wh.gone"].isfile()
    assert entries["var/cache/.wh..wh..opq"].isfile()
    assert entries["var/cache"].isdir()


def test_extracted_layer_matches_description(tmp_path: Path) -> None:
    layer = (File("dir/file", b"1\n"), Hardlink("dir/again", target="dir/file"), Symlink("dir/ln", "file"))
    with tarfile.open(fileobj=io.BytesIO(layer_tar(layer))) as tar:
        tar.extractall(tmp_path, filter="tar")
    assert (tmp_path / "dir/file").read_bytes() == b"1\n"
    assert (tmp_path / "dir/again").stat().st_ino == (tmp_path / "dir/file").stat().st_ino
    assert (tmp_path / "dir/ln").read_bytes() == b"1\n"


def test_non_ascii_names_are_stable() -> None:
    layer = (File("données/ü", b"x"),)
    assert layer_tar(layer) == layer_tar(layer)
    assert [m.name for m in members(build(ImageSpec(layers=(layer,))))] == ["données", "données/ü"]


# --------------------------------------------------------------------------------------------
# image config and manifest


def test_image_manifest_and_config() -> None:
    spec = ImageSpec(
        layers=((File("a", b"1"),), (File("b", b"2"), Whiteout("a"))),
        entrypoint=("/bin/sh", "-c"),
        cmd=("echo hi",),
        env=("PATH=/bin",),
        annotations=(("org.example/k", "v"),),
    )
    image = build(spec)
    manifest, config = manifest_of(image), config_of(image)
    assert image.media_type == manifest["mediaType"] == MEDIA_TYPE_MANIFEST
    assert manifest["schemaVersion"] == 2
    assert "artifactType" not in manifest
    assert manifest["annotations"] == {"org.example/k": "v"}
    assert manifest["config"]["mediaType"] == MEDIA_TYPE_CONFIG
    config_raw = image.blobs[manifest["config"]["digest"]]
    assert manifest["config"]["size"] == len(config_raw)

    layer_digests = [layer["digest"] for layer in manifest["layers"]]
    for layer in manifest["layers"]:
        blob = image.blobs[layer["digest"]]
        assert layer["mediaType"] == MEDIA_TYPE_LAYER_TAR
        assert layer["size"] == len(blob)
        assert layer["digest"] == "sha256:" + hashlib.sha256(blob).hexdigest()
    # Uncompressed layers: diff_id == sha256 of the tar == the blob digest (containerd needs these).
    assert config["rootfs"] == {"type": "layers", "diff_ids": layer_digests}
    assert config["architecture"] == host_architecture()
    assert config["os"] == "linux"
    assert config["config"] == {"Entrypoint": ["/bin/sh", "-c"], "Cmd": ["echo hi"], "Env": ["PATH=/bin"]}
    assert "created" not in config and "history" not in config
    assert set(image.blobs) == {manifest["config"]["digest"], *layer_digests}
    assert image.size() == len(image.manifest) + sum(len(b) for b in image.blobs.values())


def test_config_section_omitted_when_nothing_given() -> None:
    assert "config" not in config_of(build(SEED))


def test_architecture_override() -> None:
    other = "arm64" if host_architecture() != "arm64" else "amd64"
    image = build(SEED, architecture=other)
    assert config_of(image)["architecture"] == other
    assert image.manifest_digest != build(SEED).manifest_digest


def test_identical_layers_share_one_blob() -> None:
    layer = (File("x", b"same"),)
    image = build(ImageSpec(layers=(layer, layer)))
    manifest = manifest_of(image)
    assert manifest["layers"][0]["digest"] == manifest["layers"][1]["digest"]
    assert len(image.blobs) == 2  # config + one layer


def test_repr_is_short() -> None:
    image = build(ImageSpec(layers=((File("big", b"x" * 100_000),),)))
    assert len(repr(image)) < 200 and image.manifest_digest in repr(image)


# --------------------------------------------------------------------------------------------
# artifacts


def test_artifact_manifest_shape() -> None:
    spec = ArtifactSpec(
        files=(("artifact.txt", b"hello artifact\n"), ("subpath/2", b"2\n")),
        annotations=(("org.opencontainers.image.description", "test"),),
    )
    image = build(spec)
    manifest = manifest_of(image)
    assert manifest["mediaType"] == image.media_type == MEDIA_TYPE_MANIFEST
    assert manifest["artifactType"] == "application/vnd.ivc.test.v1"
    assert manifest["config"] == {"mediaType": MEDIA_TYPE_EMPTY, "digest": EMPTY_JSON_DIGEST, "size": 2}
    assert image.blobs[EMPTY_JSON_DIGEST] == EMPTY_JSON == b"{}"
    assert manifest["annotations"] == {"org.opencontainers.image.description": "test"}
    assert [layer["annotations"] for layer in manifest["layers"]] == [
        {ANNOTATION_TITLE: "artifact.txt"},
        {ANNOTATION_TITLE: "subpath/2"},
    ]
    for layer, content in zip(manifest["layers"], (b"hello artifact\n", b"2\n"), strict=True):
        # Raw bytes under a non-tar media type: newer CRI-O unpacks anything typed ".tar".
        assert layer["mediaType"] == "application/octet-stream"
        assert image.blobs[layer["digest"]] == content
        assert layer["size"] == len(content)
    assert build(spec).manifest_digest == image.manifest_digest


def test_artifact_type_and_layer_media_type_are_configurable() -> None:
    image = build(
        ArtifactSpec(files=(("f", b"x"),), artifact_type="application/x.other.v1", layer_media_type="text/plain")
    )
    manifest = manifest_of(image)
    assert manifest["artifactType"] == "application/x.other.v1"
    assert manifest["layers"][0]["mediaType"] == "text/plain"


def test_artifact_with_tar_layer_via_layer_tar() -> None:
    tree = layer_tar((File("dir/file", b"1\n"),))
    image = build(ArtifactSpec(files=(("tree", tree),), layer_media_type=MEDIA_TYPE_LAYER_TAR))
    assert image.blobs[manifest_of(image)["layers"][0]["digest"]] == tree


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (ArtifactSpec(files=(("a", b"1"), ("a", b"2"))), "given twice"),
        (ArtifactSpec(files=(("/abs", b"1"),)), "relative"),
        (ArtifactSpec(files=(("../up", b"1"),)), "'..'"),
        (ArtifactSpec(files=(("f", b"1"),), artifact_type="not a media type"), "media type"),
        (ArtifactSpec(files=(("f", b"1"),), annotations=(("k", "1"), ("k", "2"))), "given twice"),
    ],
    ids=["duplicate-title", "absolute-title", "dotdot-title", "bad-artifact-type", "duplicate-annotation"],
)
def test_artifact_validation(spec: ArtifactSpec, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build(spec)


# --------------------------------------------------------------------------------------------
# validation


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/etc/passwd", "relative"),
        ("../escape", "'..'"),
        ("a/../b", "'..'"),
        ("a//b", "not normalised"),
        ("./a", "not normalised"),
        ("a/./b", "not normalised"),
        ("a/", "not normalised"),
        (".", "not normalised"),
        ("", "non-empty"),
        ("a\0b", "NUL"),
        ("dir/.wh.name", "reserved for whiteouts"),
    ],
)
def test_bad_paths_are_rejected(path: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build(ImageSpec(layers=((File(path, b"x"),),)))


@pytest.mark.parametrize(
    ("layer", "message"),
    [
        ((File("a", b"1"), File("a", b"2")), "already has an entry"),
        ((File("a", b"1"), Dir("a")), "already has an entry"),
        ((File("a", b"1"), File("a/b", b"2")), "non-directory"),
        ((Symlink("lib", "usr/lib"), File("lib/x", b"")), "non-directory"),
        ((Hardlink("a", target="missing"),), "must be a File in the same layer"),
        ((Dir("d"), Hardlink("a", target="d")), "must be a File in the same layer"),
        ((Hardlink("a", target="/abs"),), "relative"),
        ((File("a", mode=0o10000),), "outside"),
        ((File("a", uid=-1),), ">= 0"),
        ((Symlink("a", ""),), "non-empty"),
        ((Whiteout("/x"),), "relative"),
        ((OpaqueDir("a/../b"),), "'..'"),
    ],
    ids=[
        "duplicate",
        "file-and-dir",
        "below-file",
        "below-symlink",
        "hardlink-missing",
        "hardlink-to-dir",
        "hardlink-absolute",
        "mode-range",
        "negative-uid",
        "empty-symlink",
        "whiteout-absolute",
        "opaque-dotdot",
    ],
)
def test_inconsistent_layers_are_rejected(layer: tuple, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build(ImageSpec(layers=(layer,)))


def test_wrong_types_are_rejected() -> None:
    with pytest.raises(TypeError, match="content must be bytes"):
        build(ImageSpec(layers=((File("a", "text"),),)))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="unknown layer entry"):
        build(ImageSpec(layers=(("a",),)))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="ImageSpec, IndexSpec or ArtifactSpec"):
        build("image")  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# node images (busybox and the registry are faked: no network here)


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not installed")
def test_pause_image_is_a_static_binary_and_cached(tmp_path: Path) -> None:
    spec = base_images.pause_image(cache_dir=tmp_path)
    assert spec.entrypoint == ("/pause",)
    (entry,) = spec.layers[0]
    assert isinstance(entry, File) and entry.path == "pause" and entry.mode == 0o755
    (cached,) = tmp_path.glob("pause-*")
    assert base_images._is_static_elf(cached)
    assert cached.read_bytes() == entry.content
    assert base_images.pause_image(cache_dir=tmp_path) == spec  # second call reuses the cache


def test_static_elf_detection(tmp_path: Path) -> None:
    script = tmp_path / "script"
    script.write_text("#!/bin/sh\n")
    assert not base_images._is_static_elf(script)
    dynamic = Path(shutil.which("ls") or "/bin/ls")
    assert not base_images._is_static_elf(dynamic)


def test_shell_image_layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "busybox"
    fake.write_text("#!/bin/sh\nprintf 'sh\\ncat\\nls\\nbusybox\\n'\n")
    fake.chmod(0o755)
    monkeypatch.setattr(base_images, "_busybox_binary", lambda cache_dir: fake)
    spec = base_images.shell_image(cache_dir=tmp_path)
    assert spec.entrypoint == ("/bin/sh",)
    entries = by_name(members(build(spec)))
    assert entries["bin/busybox"].isfile() and entries["bin/busybox"].mode == 0o755
    for applet in ("sh", "cat", "ls"):
        assert entries[f"bin/{applet}"].issym() and entries[f"bin/{applet}"].linkname == "busybox"
    assert "bin/.wh.busybox" not in entries and not entries["bin/busybox"].issym()
    assert entries["tmp"].mode == 0o1777
    assert entries["etc/passwd"].isfile() and entries["etc/group"].isfile()


class FakeClient:
    def __init__(self) -> None:
        self.endpoint = RegistryEndpoint(push="127.0.0.1:5000", pull="registry.internal:5000")
        self.pushed: list[tuple[str, str, str]] = []

    def push(self, image: BuiltImage, repository: str, tag: str) -> str:
        self.pushed.append((image.manifest_digest, repository, tag))
        return image.manifest_digest


def test_push_base_images_uses_the_pull_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(base_images, "pause_image", lambda cache_dir: SEED)
    monkeypatch.setattr(base_images, "shell_image", lambda cache_dir: SEED)
    client = FakeClient()
    refs = base_images.push_base_images(client, Path("/unused"))  # type: ignore[arg-type]
    shell_tag = content_tag(build(SEED).manifest_digest)  # the shell image is tagged by its content
    assert refs == {
        "pause": f"registry.internal:5000/{base_images.PAUSE_REPOSITORY}:{base_images.PAUSE_TAG}",
        "shell": f"registry.internal:5000/{base_images.SHELL_REPOSITORY}:{shell_tag}",
    }
    assert [(repo, tag) for _, repo, tag in client.pushed] == [("ivc/pause", "3.10.1"), ("ivc/shell", shell_tag)]


def test_push_base_images_rejects_unknown_names_before_pushing() -> None:
    client = FakeClient()
    with pytest.raises(ValueError, match="unknown node image 'nginx'"):
        base_images.push_base_images(client, Path("/unused"), which=("pause", "nginx"))  # type: ignore[arg-type]
    assert client.pushed == []
