"""The named test artifacts: deterministic, lazily built where expensive, and holding what the
conformance tests rely on (whiteouts and opaque markers in the right layers, owners, links)."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile

import pytest

from conformance.framework import artifacts
from conformance.framework.artifacts import (
    CATALOG,
    LARGE_FILE_SHA256,
    LARGE_FILE_SIZE,
    MANY_SMALL_FILES,
    PushedArtifact,
    large_file_content,
    spec_of,
)
from conformance.oci import ArtifactSpec, ImageSpec, build


def layer_members(name: str) -> list[dict[str, tarfile.TarInfo]]:
    built = build(spec_of(name), architecture="amd64")
    manifest = json.loads(built.manifest)
    layers = []
    for descriptor in manifest["layers"]:
        with tarfile.open(fileobj=io.BytesIO(built.blobs[descriptor["digest"]])) as tar:
            layers.append({info.name: info for info in tar.getmembers()})
    return layers


def file_content(name: str, layer: int, path: str) -> bytes:
    built = build(spec_of(name), architecture="amd64")
    digest = json.loads(built.manifest)["layers"][layer]["digest"]
    with tarfile.open(fileobj=io.BytesIO(built.blobs[digest])) as tar:
        return tar.extractfile(path).read()


@pytest.mark.parametrize("name", [n for n in CATALOG if n != "large"])
def test_every_entry_builds_to_the_same_digest_twice(name):
    first, second = build(spec_of(name), architecture="amd64"), build(spec_of(name), architecture="amd64")
    assert first.manifest_digest == second.manifest_digest
    assert dict(first.blobs) == dict(second.blobs)


def test_the_large_file_is_lazy_and_its_recorded_digest_is_right():
    assert callable(CATALOG["large"]) and not isinstance(CATALOG["large"], ImageSpec | ArtifactSpec)
    content = large_file_content()
    assert len(content) == LARGE_FILE_SIZE >= 64 * 1024 * 1024
    assert hashlib.sha256(content).hexdigest() == LARGE_FILE_SHA256
    (layer,) = spec_of("large").layers
    assert layer[0].path == "large.bin" and layer[0].content is content


def test_spec_of_accepts_a_name_or_an_entry():
    assert spec_of("seed") is CATALOG["seed"]
    assert spec_of(CATALOG["seed"]) is CATALOG["seed"]
    assert isinstance(spec_of(lambda: CATALOG["exec"]), ImageSpec)
    with pytest.raises(KeyError):
        spec_of("no-such-artifact")


def test_layered_overrides_across_three_layers():
    layers = layer_members("layered")
    assert len(layers) == 4
    assert [("override.txt" in members) for members in layers] == [True, True, True, False]
    assert [file_content("layered", i, "override.txt") for i in range(3)] == [
        b"from layer 0",
        b"from layer 1",
        b"from layer 2",
    ]


def test_layered_whiteouts_and_opaque_marker_hide_lower_entries():
    base, changes, _, _ = layer_members("layered")
    # What the markers hide exists below them…
    assert {
        "whiteout/file.txt",
        "whiteout/dir/inner.txt",
        "whiteout/kept.txt",
        "opaque/lower.txt",
        "opaque/lower-dir/inner.txt",
    } <= base.keys()
    # …and the markers sit in the next layer, next to the opaque directory's own new entry.
    assert {"whiteout/.wh.file.txt", "whiteout/.wh.dir", "opaque/.wh..wh..opq", "opaque/upper.txt"} <= changes.keys()
    assert "whiteout/kept.txt" not in changes


def test_layered_links_modes_owners_and_names():
    metadata = layer_members("layered")[2]
    assert metadata["links/relative"].issym() and metadata["links/relative"].linkname == "target.txt"
    assert metadata["links/absolute"].linkname == "/links/target.txt"
    assert metadata["links/hardlink"].islnk() and metadata["links/hardlink"].linkname == "links/target.txt"
    assert {
        path: metadata[path].mode
        for path in ("modes/file-750", "modes/file-600", "modes/file-644", "modes/dir-755", "modes/dir-700")
    } == {
        "modes/file-750": 0o750,
        "modes/file-600": 0o600,
        "modes/file-644": 0o644,
        "modes/dir-755": 0o755,
        "modes/dir-700": 0o700,
    }
    owned = [path for path, info in metadata.items() if (info.uid, info.gid) == (1234, 5678)]
    assert sorted(owned) == ["owners/owned-dir", "owners/owned.txt"]
    assert metadata["empty"].isdir() and not any(path.startswith("empty/") for path in metadata)
    assert {"unicode/grüße.txt", "unicode/日本語.txt", "unicode/emoji-🙂.txt"} <= metadata.keys()


def test_layered_many_small_files():
    many = layer_members("layered")[3]
    files = sorted(path for path, info in many.items() if info.isfile())
    assert len(files) == MANY_SMALL_FILES == 500
    assert file_content("layered", 3, "many/499") == b"small file 499"


def test_artifact_is_a_real_oci_artifact_with_titled_files():
    built = build(spec_of("artifact"))
    manifest = json.loads(built.manifest)
    assert manifest["config"]["mediaType"] == "application/vnd.oci.empty.v1+json"
    assert "artifactType" in manifest
    titles = {
        layer["annotations"]["org.opencontainers.image.title"]: built.blobs[layer["digest"]]
        for layer in manifest["layers"]
    }
    assert titles == {"artifact.txt": b"hello artifact", "subpath/2": b"2", "subpath/3": b"3"}


def test_reference_forms():
    pushed = PushedArtifact(
        name="seed", repository="ivc/artifacts/seed", tag="c-1", digest="sha256:" + "a" * 64, pull_host="registry:5000"
    )
    assert pushed.reference == "registry:5000/ivc/artifacts/seed:c-1"
    assert pushed.by_digest == f"registry:5000/ivc/artifacts/seed@sha256:{'a' * 64}"
    assert pushed.by_tag_and_digest == f"registry:5000/ivc/artifacts/seed:c-1@sha256:{'a' * 64}"


def test_push_catalog_builds_lazy_entries(monkeypatch):
    pushed = []
    monkeypatch.setattr(artifacts, "push_named", lambda client, name, spec, repository: pushed.append((name, spec)))
    artifacts.push_catalog(None, {"seed": CATALOG["seed"], "lazy": lambda: CATALOG["exec"]})
    assert pushed == [("seed", CATALOG["seed"]), ("lazy", CATALOG["exec"])]
