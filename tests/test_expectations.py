"""The expectation table: lookups by version and runtime, and the table's own hygiene."""

from dataclasses import replace

import pytest

from conformance.framework.capabilities import Capabilities, NodeInfo
from conformance.framework.expectations import TABLE, Level, behaviours, lookup, lookup_for
from conformance.framework.probe import Finding, MountProbe, Seen
from conformance.infra.versions import Version


def caps(k8s: str = "v1.36.3", runtime: str = "cri-o://1.36.3", keeps: bool = True) -> Capabilities:
    node = NodeInfo(name="n", kubelet_version=k8s, runtime=runtime, kubelet_gate=True)
    return Capabilities(server_version=k8s, nodes=(node,), apiserver_keeps_image_volumes=keeps)


@pytest.mark.parametrize(
    ("k8s", "runtime", "behaviour", "level"),
    [
        ("v1.32.13", "cri-o://1.32.0", "subpath-rejected-by-api", Level.REQUIRED),
        ("v1.33.6", "cri-o://1.33.0", "subpath-rejected-by-api", Level.NOT_APPLICABLE),
        ("v1.32.13", "cri-o://1.32.0", "subpath-directory", Level.NOT_APPLICABLE),
        ("v1.36.3", "cri-o://1.36.3", "subpath-directory", Level.REQUIRED),
        ("v1.36.3", "containerd://2.1.9", "subpath-directory", Level.KNOWN_DEFECT),
        ("v1.36.3", "containerd://2.2.9", "subpath-directory", Level.REQUIRED),
        ("v1.36.3", "containerd://2.3.7", "metrics-mount-errors", Level.KNOWN_DEFECT),
        ("v1.36.3", "acme://devel", "subpath-directory", Level.REQUIRED),
        ("v1.36.3", "containerd://devel", "subpath-directory", Level.REQUIRED),
        ("v1.36.3", "containerd://2.2.0", "subpath-file", Level.REQUIRED),
        ("v1.32.13", "cri-o://1.32.0", "subpath-file", Level.NOT_APPLICABLE),
        ("v1.36.3", "cri-o://1.36.3", "noexec", Level.INFORMATIONAL),
        ("v1.31.0", "containerd://2.1.0", "read-only", Level.REQUIRED),
    ],
)
def test_lookup_by_version_and_runtime(k8s, runtime, behaviour, level):
    assert lookup(behaviour, caps(k8s, runtime)).level is level


def test_a_known_defect_keeps_the_level_and_data_of_the_row_it_overrides():
    found = lookup("metrics-mount-errors", caps(runtime="containerd://2.3.7"))
    assert (found.level, found.defect_of) == (Level.KNOWN_DEFECT, Level.OPTIONAL)
    assert found["errors"] == "kubelet_image_volume_mounted_errors_total" and found["stability"] == "BETA"
    assert "counted as a success" in found.reason
    defect = lookup("subpath-directory", caps(runtime="containerd://2.1.9"))
    assert defect.defect_of is Level.REQUIRED and "containerd#11580" in defect.source


def test_unknown_runtimes_and_unparseable_versions_get_the_runtime_agnostic_rows_and_a_note():
    from conformance.framework.expectations import runtime_notes

    vendor = caps(runtime="acme://devel")
    assert lookup("rmi-refused-while-in-use", vendor).level is Level.NOT_APPLICABLE
    assert runtime_notes(vendor) == [
        "runtime acme://devel is not in the expectation table: its rows for containerd, cri-o are not applied, "
        "the runtime-agnostic rows are"
    ]
    assert "does not parse" in runtime_notes(caps(runtime="containerd://devel"))[0]
    assert runtime_notes(caps()) == []


def test_the_component_that_decides_selects_the_row():
    # A legal skew: apiserver 1.33 accepts subPath; a 1.32 kubelet predates image volume subPath.
    skewed = Capabilities(
        server_version="v1.33.13",
        nodes=(NodeInfo(name="old", kubelet_version="v1.32.9", runtime="cri-o://1.36.3", kubelet_gate=True),),
        apiserver_keeps_image_volumes=True,
    )
    assert (skewed.apiserver_version, skewed.kubelet_version) == (Version(1, 33, 13), Version(1, 32, 9))
    assert lookup("subpath-rejected-by-api", skewed).level is Level.NOT_APPLICABLE  # the 1.33 API accepts it
    # ...and the 1.32 kubelet mounts the whole image: a known defect of the skew, not "not applicable".
    directory = lookup("subpath-directory", skewed)
    assert (directory.level, directory.defect_of) == (Level.KNOWN_DEFECT, Level.REQUIRED)
    assert directory.scope.startswith("kubelet <1.33.0")
    assert lookup("subpath-missing", skewed)["reason"] == "CreateContainerError"  # what a 1.33 kubelet does
    assert lookup("subpath-rejected-by-api", skewed).scope.startswith("apiserver >=1.33.0")
    # Without skew, a 1.32 API rejects the Pod before any kubelet sees it.
    assert lookup("subpath-directory", caps("v1.32.9")).level is Level.NOT_APPLICABLE


TABLE_VERSIONS = [f"v1.{minor}.{patch}" for minor in range(31, 40) for patch in (0, 9)]
RUNTIMES = ["cri-o://1.36.3", "cri-o://1.32.0", "containerd://2.1.9", "containerd://2.4.2", "acme://devel"]


@pytest.mark.parametrize("version", TABLE_VERSIONS)
def test_the_table_is_total_from_1_31_on(version):
    from itertools import combinations

    from conformance.framework.expectations import CAPABILITY_FLAGS, lookup_for

    flag_sets = [frozenset(c) for n in range(len(CAPABILITY_FLAGS) + 1) for c in combinations(CAPABILITY_FLAGS, n)]
    for behaviour in sorted(behaviours()):
        for runtime in RUNTIMES:
            name, _, raw = runtime.partition("://")
            for flags in flag_sets:
                lookup_for(behaviour, Version.parse(version), name, Version.parse_or_none(raw), flags=flags)


def test_unknown_behaviour_is_an_error():
    with pytest.raises(KeyError, match="no row"):
        lookup("teleportation", caps())


def test_no_matching_row_is_an_error_that_says_what_to_add():
    from conformance.framework.expectations import NoRow

    with pytest.raises(NoRow, match=r"no row for kubelet 1\.30\.0 with cri-o 1\.30\.0.*add a row"):
        lookup_for("content", Version(1, 30), "cri-o", Version(1, 30))
    assert lookup_for("image-volumes-available", Version(1, 30), "cri-o", Version(1, 30)).level is Level.REQUIRED


def test_every_row_names_a_source_and_every_skip_a_reason():
    for rule in TABLE:
        assert rule.source, rule
        if rule.level is Level.NOT_APPLICABLE:
            assert rule.reason, f"{rule.behaviour} {rule.scope()} skips without a reason"


def test_every_behaviour_in_the_table_is_tested(pytestconfig):
    tests = "".join(p.read_text() for p in (pytestconfig.rootpath / "conformance").glob("test_*.py"))
    untested = sorted(b for b in behaviours() if f'"{b}"' not in tests)
    assert not untested, f"behaviours with no test: {untested}"


@pytest.mark.parametrize(
    ("keeps", "gate", "server", "fragment"),
    [
        (False, True, "v1.34.3", "silently drops"),
        (True, False, "v1.34.3", "gate is off on kubelet"),
        (True, True, "v1.30.4", "predates"),
    ],
)
def test_feature_unavailable_reason_is_one_actionable_line(keeps, gate, server, fragment):
    node = NodeInfo(name="n", kubelet_version=server, runtime="cri-o://1.34.0", kubelet_gate=gate)
    reason = Capabilities(
        server_version=server, nodes=(node,), apiserver_keeps_image_volumes=keeps
    ).feature_unavailable_reason()
    assert reason and fragment in reason and "\n" not in reason


def test_capabilities_round_trip_json():
    original = caps()
    assert Capabilities.from_json(original.to_json()) == original


def test_cluster_settings_select_rows_too():
    forced = Capabilities(
        server_version="v1.36.3", nodes=caps().nodes, apiserver_keeps_image_volumes=True, admission_forces_always=True
    )
    assert lookup("never-pull-absent", forced).level is Level.NOT_APPLICABLE
    assert "AlwaysPullImages" in lookup("never-pull-absent", forced).reason
    assert lookup("always-pull-images-admission", forced).level is Level.REQUIRED
    assert lookup("always-pull-images-admission", caps()).level is Level.NOT_APPLICABLE


@pytest.mark.parametrize(
    ("artifact", "mounts"),
    [
        (Finding(Seen.MOUNTED), True),
        (Finding(Seen.BLOCKED, "registry: connection refused"), True),
        (Finding(Seen.REFUSED, "ImageVolumeMountFailed: multiple artifacts found with matching digest: a,b"), True),
        (Finding(Seen.REFUSED, "ImageVolumeMountFailed: unsupported media type"), False),
        (Finding(Seen.EMPTY, "the Pod runs, /volume shows []"), False),
    ],
)
def test_a_refusal_showing_a_known_defect_is_not_a_runtime_without_artifacts(artifact, mounts):
    probed = replace(caps(), probes={"g": MountProbe(image_volume=Finding(Seen.MOUNTED), artifact=artifact)})
    assert probed.artifact_mounts is mounts
