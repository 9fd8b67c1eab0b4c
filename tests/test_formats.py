"""Image formats real registries serve, built deterministically: gzip and zstd framings any decoder reads,
Docker Schema 2 media types, and multi-platform indexes."""

from __future__ import annotations

import gzip
import json

import pytest
import zstandard

from conformance.oci.layout import (
    MEDIA_TYPE_DOCKER_CONFIG,
    MEDIA_TYPE_DOCKER_LAYER,
    MEDIA_TYPE_DOCKER_MANIFEST,
    MEDIA_TYPE_INDEX,
    File,
    ImageSpec,
    IndexSpec,
    build,
    digest_of,
    gzip_stored,
    layer_tar,
    zstd_raw,
)

SIZES = [0, 1, 0xFFFF, 0xFFFF + 1, 128 * 1024, 128 * 1024 + 1, 300_000]


def payload(size: int) -> bytes:
    return bytes(range(256)) * (size // 256) + bytes(range(size % 256))


@pytest.mark.parametrize("size", SIZES)
def test_gzip_framing_is_read_by_gunzip(size: int) -> None:
    data = payload(size)
    assert gzip.decompress(gzip_stored(data)) == data


@pytest.mark.parametrize("size", SIZES)
def test_zstd_framing_is_read_by_a_zstd_decoder(size: int) -> None:
    data = payload(size)
    framed = zstd_raw(data)
    assert zstandard.ZstdDecompressor().decompress(framed) == data
    assert zstandard.get_frame_parameters(framed).content_size == size


LAYER = (File("file", b"2"), File("dir/file", b"1"))


@pytest.mark.parametrize(("compression", "suffix"), [("none", ""), ("gzip", "+gzip"), ("zstd", "+zstd")])
def test_compressed_layers_keep_the_diff_id_of_the_tar(compression: str, suffix: str) -> None:
    built = build(ImageSpec(layers=(LAYER,), compression=compression), architecture="amd64")
    manifest = json.loads(built.manifest)
    layer = manifest["layers"][0]
    config = json.loads(built.blobs[manifest["config"]["digest"]])
    assert layer["mediaType"] == "application/vnd.oci.image.layer.v1.tar" + suffix
    assert config["rootfs"]["diff_ids"] == [digest_of(layer_tar(LAYER))]
    assert build(ImageSpec(layers=(LAYER,), compression=compression), architecture="amd64") == built


def test_docker_schema_2_media_types() -> None:
    built = build(ImageSpec(layers=(LAYER,), compression="gzip", media_types="docker"), architecture="amd64")
    manifest = json.loads(built.manifest)
    assert built.media_type == manifest["mediaType"] == MEDIA_TYPE_DOCKER_MANIFEST
    assert manifest["config"]["mediaType"] == MEDIA_TYPE_DOCKER_CONFIG
    assert [layer["mediaType"] for layer in manifest["layers"]] == [MEDIA_TYPE_DOCKER_LAYER]
    assert gzip.decompress(built.blobs[manifest["layers"][0]["digest"]]) == layer_tar(LAYER)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (ImageSpec(layers=(LAYER,), compression="lz4"), "compression 'lz4'"),
        (ImageSpec(layers=(LAYER,), media_types="docker"), "gzip"),
        (ImageSpec(layers=(LAYER,), media_types="appc"), "media_types 'appc'"),
        (IndexSpec(images=()), "at least one image"),
        (IndexSpec(images=(("amd64", ImageSpec(layers=())), ("amd64", ImageSpec(layers=())))), "distinct"),
        (IndexSpec(images=(("x86_64", ImageSpec(layers=())),)), "GOARCH"),
    ],
)
def test_misspelled_formats_fail_loudly(spec: ImageSpec | IndexSpec, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build(spec, architecture="amd64")


def test_an_index_names_each_platform_and_carries_its_manifests() -> None:
    images = tuple((arch, ImageSpec(layers=((File("platform", arch.encode()),),))) for arch in ("arm64", "amd64"))
    built = build(IndexSpec(images=images))
    index = json.loads(built.manifest)
    assert built.media_type == index["mediaType"] == MEDIA_TYPE_INDEX
    assert [m["platform"] for m in index["manifests"]] == [
        {"architecture": "arm64", "os": "linux"},
        {"architecture": "amd64", "os": "linux"},
    ]
    assert [m["digest"] for m in index["manifests"]] == [child.manifest_digest for child in built.children]
    for (arch, _), child in zip(images, built.children, strict=True):
        config_digest = json.loads(child.manifest)["config"]["digest"]
        assert json.loads(child.blobs[config_digest])["architecture"] == arch
        assert set(child.blobs) <= set(built.blobs)
