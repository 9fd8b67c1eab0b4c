import pytest

from conformance.framework.manifests import render, templates


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


@pytest.mark.parametrize("template", templates())
def test_every_template_renders_to_a_pod(template):
    params = {"name": "p", "shell_image": "r/shell:1", "reference": "r/a:v1", "second_reference": "r/b:v1"}
    try:
        pod = render(template, **params)
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
        body = render(template, name="p", shell_image="s", reference="r", second_reference="r2")
        if body["kind"] == "Pod":
            assert body["spec"]["nodeSelector"] == {"kubernetes.io/os": "linux"}, template
