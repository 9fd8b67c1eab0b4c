"""What `pip install .` ships: every package, the Pod templates and kind files as package data, the plugin."""

import tomllib
from importlib.metadata import entry_points
from importlib.resources import files
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_every_package_of_the_checkout_is_listed():
    found = {".".join(path.parent.relative_to(ROOT).parts) for path in (ROOT / "conformance").rglob("__init__.py")}
    data = set(PROJECT["tool"]["setuptools"]["package-dir"])
    assert set(PROJECT["tool"]["setuptools"]["packages"]) == found | data


def test_templates_and_kind_files_are_package_data():
    assert (files("conformance.manifests") / "basic.yaml").read_text().startswith("#")
    assert "criSocket" in (files("conformance.kind_files") / "cluster-crio.yaml").read_text()


def test_the_plugin_is_registered_by_entry_point():
    (plugin,) = [ep for ep in entry_points(group="pytest11") if ep.value.startswith("conformance.")]
    assert plugin.value == "conformance.framework.plugin"
