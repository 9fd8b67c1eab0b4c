"""Image formats real registries serve, each built here byte for byte: layer compressions, Docker Schema 2
media types, multi-platform indexes, images of many layers, configs that describe no runnable process.

Each variant carries a file naming it, so the test sees that the node mounted exactly that image.
"""

import pytest

from conformance.framework.artifacts import EXPECTED_TREES, MANY_LAYERS, platform_tree

# Catalog entry → its volume in manifests/formats.yaml (mounted at /formats/<volume>) and the parameter
# naming its reference there (the first entry's is the shared Pod's own artifact).
SHARED_FORMATS = {
    "seed-gzip": ("gzip", None),
    "seed-docker": ("docker", "docker_reference"),
    "multi-platform": ("platform", "platform_reference"),
    "no-process-config": ("no-process", "no_process_reference"),
    "entrypoint-not-in-image": ("missing-entrypoint", "missing_entrypoint_reference"),
}


def format_mount(shared_volume, artifacts, name):
    """(Pod, path) where catalog entry `name` is mounted: in the run's one Pod mounting every required format,
    or, where that Pod does not start, in a Pod of its own (framework fixture `shared_volume`)."""
    references = {param: artifacts[entry].reference for entry, (_, param) in SHARED_FORMATS.items() if param}
    path = f"/formats/{SHARED_FORMATS[name][0]}"
    return shared_volume("seed-gzip", "formats", path, {"reference": artifacts[name].reference}, **references)


def mounted_or_refused(launch, artifacts, name, pod_start_timeout, observe):
    """The Running Pod mounting catalog entry `name`; None when the runtime refused the image, which it
    may, but only with a reason. Either outcome is observed."""
    pod = launch("basic", reference=artifacts[name].reference, wait=False)
    refused = pod.wait_running_or_refused(pod_start_timeout, pulls=True)
    observe(name, "mounted" if refused is None else f"refused: {refused[:200]}")
    if refused is None:
        return pod
    assert refused.rpartition(": ")[2].strip(), f"{name} refused without a reason: {refused!r}"
    return None


@pytest.mark.behaviour("layer-gzip")
def test_gzip_layers_are_unpacked(shared_volume, artifacts):
    pod, path = format_mount(shared_volume, artifacts, "seed-gzip")
    pod.assert_tree(path, EXPECTED_TREES["seed-gzip"])


@pytest.mark.behaviour("layer-zstd")
def test_zstd_layers_are_unpacked_or_refused_with_the_reason(launch, artifacts, observe, pod_start_timeout):
    if pod := mounted_or_refused(launch, artifacts, "seed-zstd", pod_start_timeout, observe):
        pod.assert_tree("/volume", EXPECTED_TREES["seed-zstd"])


@pytest.mark.behaviour("docker-schema-2")
def test_docker_schema_2_image_is_mounted(shared_volume, artifacts):
    pod, path = format_mount(shared_volume, artifacts, "seed-docker")
    pod.assert_tree(path, EXPECTED_TREES["seed-docker"])


@pytest.mark.behaviour("multi-platform-index")
def test_a_multi_platform_index_mounts_the_nodes_own_platform(shared_volume, artifacts):
    pod, path = format_mount(shared_volume, artifacts, "multi-platform")
    seen = pod.listdir(path)
    assert seen == set(platform_tree()), (
        f"the node mounted another platform's image: {path} holds {sorted(seen)}, expected {sorted(platform_tree())}"
    )
    pod.assert_tree(path, platform_tree())


@pytest.mark.slow
@pytest.mark.behaviour("many-layers")
def test_an_image_of_many_layers_is_mounted_whole_or_refused_clearly(launch, artifacts, observe, pod_start_timeout):
    if (pod := mounted_or_refused(launch, artifacts, "many-layers", pod_start_timeout, observe)) is None:
        return
    expected = EXPECTED_TREES["many-layers"]
    # One exec for all files: name=content per line; `top` shows which layer won.
    result = pod.sh(
        'cat /volume/top; echo; for f in /volume/layers/*; do printf "%s=%s\\n" "${f##*/}" "$(cat "$f")"; done'
    )
    assert result.returncode == 0, result.output
    top, *lines = result.stdout.splitlines()
    assert top == expected["top"], f"/volume/top is {top!r}: the highest of {MANY_LAYERS} layers must win"
    seen = dict(line.split("=", 1) for line in lines)
    layers = {path.removeprefix("layers/"): content for path, content in expected.items() if path != "top"}
    missing = sorted(set(layers) - set(seen))
    assert not missing, f"{len(missing)} of {MANY_LAYERS} layers are missing from the mount, e.g. {missing[:5]}"
    assert seen == layers, "layers/ differs from the image"
    assert pod.listdir("/volume") == {"top", "layers"}


@pytest.mark.behaviour("non-runnable-config")
@pytest.mark.parametrize("name", ["no-process-config", "entrypoint-not-in-image"])
def test_an_image_whose_config_runs_nothing_is_mounted(shared_volume, artifacts, name):
    """A volume is data: a config without a process, or naming a program the image lacks, changes nothing."""
    pod, path = format_mount(shared_volume, artifacts, name)
    pod.assert_tree(path, EXPECTED_TREES[name])
