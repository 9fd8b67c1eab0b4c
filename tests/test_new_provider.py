"""Adding a provider is one declaration: a fake one, registered in `PROVIDERS`, is offered by the options and
the CLI, takes the flags every provider takes, refuses the others in one line, and is made by
`make_provider` (nothing of the framework or the other providers is edited for it)."""

from __future__ import annotations

from typing import ClassVar

import pytest

from conformance.cluster import ClusterHandle, ClusterOptions, make_provider
from conformance.cluster.__main__ import main
from conformance.cluster.contract import NodeAccess
from conformance.cluster.options import PROVIDERS
from conformance.infra.errors import ClusterError
from conformance.oci.endpoint import RegistryEndpoint


class StaticProvider:
    """Hands out one fixed cluster: what a provider for a cluster farm or a cloud API would start from."""

    name: ClassVar[str] = "static"

    def __init__(self, options: ClusterOptions) -> None:
        self.options = options

    def _handle(self) -> ClusterHandle:
        return ClusterHandle(
            provider=self.name,
            kubeconfig="/etc/static/kubeconfig",
            context=None,
            registry=RegistryEndpoint(push="registry.static:5000", pull="registry.static:5000"),
            auth_registry=None,
            node_access=NodeAccess(),
            created_by_run=False,
            description="static: the farm's cluster",
        )

    def up(self, *, keep: bool = True) -> ClusterHandle:
        return self._handle()

    def running_handle(self) -> ClusterHandle | None:
        return self._handle()

    def down(self) -> None:
        pass

    def status(self) -> str:
        return "static cluster: always there"

    def env(self) -> dict[str, str]:
        return self._handle().exports()

    def prepare(self) -> str:
        return "nothing to build"


@pytest.fixture(autouse=True)
def static(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(PROVIDERS, "static", (__name__, "StaticProvider"))


def test_the_options_offer_it_with_the_flags_every_provider_takes(tmp_path) -> None:
    options = ClusterOptions.parse("static", {"cache_dir": str(tmp_path)})
    assert (options.provider, options.cache_dir) == ("static", tmp_path)


def test_flags_of_other_providers_are_refused_in_one_line() -> None:
    with pytest.raises(ClusterError, match=r"^--cluster=static does not take --k8s-version: drop it"):
        ClusterOptions.parse("static", {"k8s_version": "1.35.4"})


def test_make_provider_makes_it() -> None:
    provider = make_provider(ClusterOptions(provider="static"))
    assert isinstance(provider, StaticProvider)
    assert provider.up().description == "static: the farm's cluster"


def test_the_cli_offers_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "--provider", "static"]) == 0
    assert "static cluster: always there" in capsys.readouterr().out
    assert main(["env", "--provider", "static"]) == 0
    assert "export KUBECONFIG=/etc/static/kubeconfig" in capsys.readouterr().out
