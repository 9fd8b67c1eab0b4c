"""pullPolicy: what the API defaults, and what the node does with each policy."""

import pytest

from conformance.framework.artifacts import EXPECTED_TREES

REPOSITORY = "ivc/policy-probe"
DIGEST = "sha256:" + "a" * 64


@pytest.mark.behaviour("pull-policy-default")
@pytest.mark.parametrize(
    ("reference_suffix", "given", "stored"),
    [
        (":latest", None, "Always"),
        ("", None, "Always"),  # no tag means latest (ParseImageName)
        (":v1", None, "IfNotPresent"),
        (f"@{DIGEST}", None, "IfNotPresent"),
        (f":v1@{DIGEST}", None, "IfNotPresent"),
        (":latest", "IfNotPresent", "IfNotPresent"),
        (":v1", "Always", "Always"),
        (":v1", "Never", "Never"),
    ],
    ids=[
        "latest",
        "no-tag",
        "tag",
        "digest",
        "tag+digest",
        "explicit-IfNotPresent",
        "explicit-Always",
        "explicit-Never",
    ],
)
def test_pull_policy_as_stored_by_the_api(kube, namespace, render_pod, ivc_session, reference_suffix, given, stored):
    reference = f"{ivc_session.handle.registry.pull}/{REPOSITORY}{reference_suffix}"
    pod = kube.create_pod(namespace, render_pod("basic", reference=reference, pull_policy=given), dry_run=True)
    image = pod["spec"]["volumes"][0]["image"]
    assert image["reference"] == reference
    assert image.get("pullPolicy") == stored, f"{reference} (given {given}) stored as {image.get('pullPolicy')}"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("pull_policy", "tree_after_move"),
    [
        pytest.param("Always", "seed-moved", marks=pytest.mark.behaviour("repull-on-recreate"), id="Always"),
        pytest.param(
            "IfNotPresent", "seed", marks=pytest.mark.behaviour("if-not-present-keeps-node-copy"), id="IfNotPresent"
        ),
    ],
)
def test_recreated_pod_after_the_tag_moved(launch, private_push, pull_policy, tree_after_move):
    first = private_push("seed", tag="moving")
    pod = launch("basic", reference=first.reference, pull_policy=pull_policy, name="before-move")
    pod.assert_tree("/volume", EXPECTED_TREES["seed"])
    pod.delete()
    moved = private_push("seed-moved", tag="moving")
    assert moved.digest != first.digest
    # On the same node: only that node's copy can show what IfNotPresent keeps.
    recreated = launch(
        "basic", reference=moved.reference, pull_policy=pull_policy, name="after-move", node_name=pod.node
    )
    recreated.assert_tree("/volume", EXPECTED_TREES[tree_after_move])


@pytest.mark.slow
@pytest.mark.behaviour("if-not-present-uses-node-copy")
def test_if_not_present_second_pod_uses_the_node_copy(launch, private_push, expectation, pod_start_timeout):
    pushed = private_push("seed")  # a repository only this test uses: the node has never pulled it
    quoted = f'"{pushed.reference}"'
    first = launch("basic", reference=pushed.reference, pull_policy="IfNotPresent", name="first")
    # The first Pod's pull proves the node had no copy, so the second Pod's verdict is about IfNotPresent.
    first.wait_for_event(expectation["pulling"], quoted, timeout=pod_start_timeout)
    second = launch(
        "basic", reference=pushed.reference, pull_policy="IfNotPresent", name="second", node_name=first.node
    )
    message = second.wait_for_event(
        expectation["reason"], f"{quoted} {expectation['message']}", timeout=pod_start_timeout
    )
    pulls = [m for m in second.event_messages(expectation["pulling"]) if quoted in m]
    assert not pulls, f"IfNotPresent pulled an image the node had ({message!r}): {pulls}"
    assert second.read("/volume/dir/file") == "1"


@pytest.mark.slow
@pytest.mark.behaviour("always-pulls-again")
def test_always_second_pod_pulls_again(launch, private_push, expectation, pod_start_timeout):
    pushed = private_push("seed")
    first = launch("basic", reference=pushed.reference, pull_policy="Always", name="first")  # Running: the node has it
    second = launch("basic", reference=pushed.reference, pull_policy="Always", name="second", node_name=first.node)
    second.wait_for_event(
        expectation["reason"], f'{expectation["message"]} "{pushed.reference}"', timeout=pod_start_timeout
    )
    assert second.read("/volume/dir/file") == "1"
