import pytest

from conformance.framework.manifests import PodSecurity, parameters, pinned, render, secured, templates


def test_null_parameters_drop_the_field():
    pod = render("basic", name="p", shell_image="r/shell:1", reference="r/a:v1")
    image = pod["spec"]["volumes"][0]["image"]
    assert image == {"reference": "r/a:v1"}
    mount = pod["spec"]["containers"][0]["volumeMounts"][0]
    assert mount == {"name": "volume", "mountPath": "/volume"}


def test_values_are_quoted_safely():
    pod = render(
        "basic",
        name="p",
        shell_image="r/shell:1",
        reference="r/a:v1",
        sub_path_expr="$(X)",
        read_only=False,
        pull_policy="Never",
    )
    mount = pod["spec"]["containers"][0]["volumeMounts"][0]
    assert mount["subPathExpr"] == "$(X)" and mount["readOnly"] is False
    assert pod["spec"]["volumes"][0]["image"]["pullPolicy"] == "Never"


def test_pull_secrets_and_service_account_are_set_only_when_given():
    pod = render(
        "basic",
        name="p",
        shell_image="r/shell:1",
        reference="r/a:v1",
        pull_secrets=[{"name": "ivc-pull-secret"}],
        service_account="puller",
    )
    assert pod["spec"]["imagePullSecrets"] == [{"name": "ivc-pull-secret"}]
    assert pod["spec"]["serviceAccountName"] == "puller"
    unset = render("basic", name="p", shell_image="r/shell:1", reference="r/a:v1")["spec"]
    assert "imagePullSecrets" not in unset and "serviceAccountName" not in unset


def test_missing_parameter_names_the_placeholder():
    with pytest.raises(KeyError, match="reference"):
        render("basic", name="p", shell_image="r/shell:1")


ESSENTIALS = {
    "name": "p",
    "shell_image": "r/shell:1",
    "reference": "r/a:v1",
    "second_reference": "r/b:v1",
    **{
        f"{kind}_reference": f"r/{kind}:v1"
        for kind in ("docker", "platform", "no_process", "missing_entrypoint", "digest", "tag_and_digest")
    },
}


def essentials(template: str) -> dict:
    return {key: value for key, value in ESSENTIALS.items() if key in parameters(template)}


@pytest.mark.parametrize("template", templates())
def test_every_template_renders_to_a_pod(template):
    try:
        pod = render(template, **essentials(template))
    except KeyError as missing:  # a template with parameters of its own
        pytest.fail(f"template {template} needs {missing}; add it to this test")
    assert pod["kind"] == "Pod" and pod["metadata"]["name"] == "p"


def test_fs_group_and_node_name_are_optional_on_the_basic_pod():
    unset = render("basic", name="p", shell_image="r/shell:1", reference="r/a:v1")
    assert "nodeName" not in unset["spec"] and not unset["spec"].get("securityContext")
    pod = render(
        "basic",
        name="p",
        shell_image="r/shell:1",
        reference="r/a:v1",
        fs_group=4242,
        fs_group_change_policy="OnRootMismatch",
        node_name="node-1",
    )
    assert pod["spec"]["securityContext"] == {"fsGroup": 4242, "fsGroupChangePolicy": "OnRootMismatch"}
    assert pod["spec"]["nodeName"] == "node-1"


def test_init_sidecar_pod_mounts_the_volume_in_every_container():
    pod = render("init-sidecar", name="p", shell_image="r/shell:1", reference="r/a:v1")
    init, sidecar = pod["spec"]["initContainers"]
    assert "restartPolicy" not in init and sidecar["restartPolicy"] == "Always"
    for container in (init, sidecar, *pod["spec"]["containers"]):
        assert {m["name"]: m["mountPath"] for m in container["volumeMounts"]} == {"volume": "/volume", "seen": "/seen"}


def test_every_pod_is_kept_off_non_linux_nodes():
    from conformance.framework.manifests import render, templates

    for template in templates():
        body = render(template, **essentials(template))
        if body["kind"] == "Pod":
            assert body["spec"]["nodeSelector"] == {"kubernetes.io/os": "linux"}, template


def test_a_misspelled_parameter_is_an_error_naming_it():
    with pytest.raises(TypeError, match="no parameter sub_paht"):
        render("basic", name="p", shell_image="s", reference="r", sub_paht="dir")


@pytest.mark.parametrize("template", templates())
def test_restricted_pods_meet_the_restricted_profile(template):
    pod = secured(render(template, **essentials(template)), PodSecurity.RESTRICTED)
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert pod["spec"]["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for container in pod["spec"]["containers"] + pod["spec"].get("initContainers", []):
        assert container["securityContext"] == {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


def test_baseline_pods_run_as_root_and_keep_what_the_template_set():
    pod = secured(render("basic", **essentials("basic"), fs_group=4242), PodSecurity.BASELINE)
    assert pod["spec"]["securityContext"] == {"fsGroup": 4242, "runAsUser": 0, "runAsGroup": 0}


def test_a_pinned_pod_runs_only_on_its_node_group():
    pod = pinned(render("basic", **essentials("basic")), ["b", "a"])
    terms = pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert terms == {"nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In",
                                                            "values": ["a", "b"]}]}]}  # fmt: skip
