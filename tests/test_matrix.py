"""The matrix command's pure parts: configurations, cells, and README sections kept equal to the JSON."""

import json
from pathlib import Path

import pytest

from conformance import matrix
from conformance.infra.readme import README, with_section

ROOT = Path(__file__).resolve().parents[1]


def test_configurations_are_the_product_of_the_axes():
    found = matrix.configurations(["v1.32.9", "v1.36.3"], ["cri-o", "containerd:v2.2.9"])
    assert [c.label for c in found] == [
        "v1.32.9-cri-o", "v1.32.9-containerd-v2.2.9", "v1.36.3-cri-o", "v1.36.3-containerd-v2.2.9",
    ]  # fmt: skip
    assert found[1].flags() == ["--k8s-version", "v1.32.9", "--runtime", "containerd", "--runtime-version", "v2.2.9"]
    assert matrix.configurations([], [])[0].flags() == []


def test_kind_configurations_name_every_node_runtime():
    found = matrix.configurations(["v1.36.3"], [], "kind", ["cri-o,cri-o,containerd", "cri-o,containerd:v2.1.9"])
    assert [c.label for c in found] == ["kind-v1.36.3-cri-o+cri-o+containerd", "kind-v1.36.3-cri-o+containerd-v2.1.9"]
    assert found[0].flags() == ["--k8s-version", "v1.36.3", "--node-runtimes", "cri-o,cri-o,containerd"]
    assert [c.label for c in matrix.configurations([], ["containerd"], "kind")] == ["kind-default-k8s-containerd"]
    with pytest.raises(matrix.ClusterError, match="--node-runtimes is kind's"):
        matrix.configurations([], [], "local", ["cri-o,containerd"])
    with pytest.raises(matrix.ClusterError, match="choose one of"):
        matrix.configurations([], [], "existing")


def test_a_column_names_every_node_group():
    cluster = {"provider": "kind", "kubernetes": "v1.36.3", "runtime": "cri-o://1.36.3", "node_groups": [
        {"label": "cri-o 1.36.3 (kubelet v1.36.3; ivc-control-plane, ivc-worker)"},
        {"label": "containerd 2.3.7 (kubelet v1.36.3; ivc-worker2)"},
    ]}  # fmt: skip
    assert matrix.column({"label": "x", "cluster": cluster}) == "kind: v1.36.3<br>cri-o 1.36.3 + containerd 2.3.7"


def test_cells_name_outcomes_and_number_the_reasons():
    footnotes: dict[str, int] = {}
    na = {"outcome": "skipped", "level": "not-applicable", "message": "artifact-content: no artifacts [k8s any]"}
    assert matrix.cell(na, footnotes) == "n/a [1]"
    assert matrix.cell(dict(na), footnotes) == "n/a [1]"  # the same reason, the same note
    assert matrix.cell({"outcome": "known-defect", "level": "known-defect", "message": "x"}, footnotes) == (
        "known defect"
    )
    assert matrix.cell({"outcome": "failed", "level": "required", "message": "x"}, footnotes) == "**FAIL**"
    assert matrix.cell(None, footnotes) == "–"
    assert footnotes == {"no artifacts": 1}  # the behaviour prefix is dropped: shared reasons share a note


@pytest.mark.parametrize("name", ["runtimes", "versions"])
def test_readme_matrix_is_the_committed_json(name):
    source = ROOT / "matrix" / name / "matrix.json"
    if not source.exists():
        pytest.skip(f"{source} has not been measured yet (python -m conformance.matrix … --out matrix/{name})")
    table = matrix.render_markdown(json.loads(source.read_text()))
    readme = README.read_text()
    assert with_section(readme, f"{name}-matrix", table) == readme, (
        f"README's {name} matrix is stale: python -m conformance.matrix --render-only --out matrix/{name} "
        f"--write-readme {name}"
    )
