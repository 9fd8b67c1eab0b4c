"""Pure parts of the from-module build: wrapper go.mod, staging list, version stamping."""

import pytest

from conformance.cluster.components.gomodules import (
    kubernetes_ldflags,
    refused_modules,
    render_wrapper_gomod,
    required_toolchain,
    staging_modules,
)
from conformance.infra.errors import ClusterError


def test_staging_modules_are_read_from_the_release_gomod(tmp_path):
    gomod = tmp_path / "go.mod"
    gomod.write_text(
        "module k8s.io/kubernetes\nreplace (\n\tk8s.io/api => ./staging/src/k8s.io/api\n"
        "\tk8s.io/kubelet => ./staging/src/k8s.io/kubelet\n\tgithub.com/x/y => github.com/x/y v1\n)\n"
    )
    assert staging_modules(gomod) == ["k8s.io/api", "k8s.io/kubelet"]


def test_wrapper_gomod_pins_release_and_replaces():
    text = render_wrapper_gomod(
        "kubernetes-v1.36.3",
        "1.26.0",
        [("k8s.io/kubernetes", "v1.36.3")],
        ["k8s.io/kubernetes/cmd/kubelet"],
        [("k8s.io/api", "v0.36.3")],
    )
    assert "require k8s.io/kubernetes v1.36.3" in text
    assert "replace k8s.io/api => k8s.io/api v0.36.3" in text
    assert "tool k8s.io/kubernetes/cmd/kubelet" in text
    assert "go 1.26.0" in text


def test_ldflags_stamp_both_version_packages():
    flags = kubernetes_ldflags("v1.36.3")
    for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        assert f"-X {package}.gitVersion=v1.36.3" in flags
        assert f"-X {package}.gitMinor=36" in flags


def test_the_toolchain_a_release_needs_is_read_from_plain_and_json_errors():
    plain = "go: k8s.io/kubernetes@v1.38.0-beta.0 requires go >= 1.27.0 (running go 1.26.8; GOTOOLCHAIN=local)"
    as_json = '"Error": "k8s.io/kubernetes@v1.38.0-beta.0 requires go \\u003e= 1.27.0 (running go 1.26.8)"'
    assert required_toolchain(plain) == required_toolchain(as_json) == "go1.27.3"
    assert required_toolchain("403 Forbidden") is None
    with pytest.raises(ClusterError, match=r"needs Go 1\.28\.0"):
        required_toolchain("requires go >= 1.28.0 (running go 1.26.8)")


def test_modules_the_proxy_refuses_are_named_once_each():
    error = (
        "k8s.io/apiextensions-api@v0.38.0-beta.0: reading https://proxy.example/k8s.io/apiextensions-api/@v/"
        "v0.38.0-beta.0.zip: 403 Forbidden\n"
        "sigs.k8s.io/structured-merge-diff/v7@v7.0.1: reading https://proxy.example/sigs.k8s.io/"
        "structured-merge-diff/v7/@v/v7.0.1.zip: 403 Forbidden\n"
        "k8s.io/apiextensions-api@v0.38.0-beta.0: reading https://proxy.example/k8s.io/apiextensions-api/@v/"
        "v0.38.0-beta.0.zip: 403 Forbidden"
    )
    assert refused_modules(error) == [
        "k8s.io/apiextensions-api@v0.38.0-beta.0",
        "sigs.k8s.io/structured-merge-diff/v7@v7.0.1",
    ]
    assert refused_modules("go: downloading k8s.io/api v0.36.3") == []
