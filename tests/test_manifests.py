import pytest

from conformance.framework.manifests import render, templates


def test_null_parameters_drop_the_field():
    pod = render("basic", name="p", shell_image="r/shell:1", reference="r/a:v1")
    image = pod["spec"]["volumes"][0]["image"]
    assert image == {"reference": "r/a:v1"}
    mount = pod["spec"]["containers"][0]["volumeMounts"][0]
    assert mount == {"name": "volume", "mountPath": "/volume"}


def test_values_are_quoted_safely():
    pod = render("basic", name="p", shell_image="r/shell:1", reference="r/a:v1", sub_path_expr="$(X)",
                 read_only=False, pull_policy="Never")
    mount = pod["spec"]["containers"][0]["volumeMounts"][0]
    assert mount["subPathExpr"] == "$(X)" and mount["readOnly"] is False
    assert pod["spec"]["volumes"][0]["image"]["pullPolicy"] == "Never"


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
