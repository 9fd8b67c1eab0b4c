from conformance.framework.capabilities import Capabilities, NodeInfo
from conformance.framework.known_issues import KNOWN_ISSUES, hints_for

ROOT_MOUNTED = (
    "AssertionError: subPath ignored: /volume shows the image root ['dir', 'file'] instead of subPath dir's ['file']"
)


def caps(runtime: str) -> Capabilities:
    node = NodeInfo(name="n", kubelet_version="v1.35.4", runtime=runtime, kubelet_gate=True)
    return Capabilities(server_version="v1.35.4", nodes=(node,), apiserver_keeps_image_volumes=True)


def test_containerd_2_1_root_mount_gets_the_upstream_issue():
    hints = hints_for("subpath-directory", ROOT_MOUNTED, caps("containerd://2.1.9"))
    assert len(hints) == 1 and "containerd#11580" in hints[0]


def test_no_hint_outside_the_affected_versions():
    assert hints_for("subpath-directory", ROOT_MOUNTED, caps("containerd://2.2.0")) == []


def test_no_hint_for_an_unrelated_symptom():
    assert hints_for("subpath-directory", "assert '2' == '1'", caps("containerd://2.1.9")) == []


def test_every_hint_names_an_upstream_reference():
    for issue in KNOWN_ISSUES:
        assert "#" in issue.hint, issue.hint
