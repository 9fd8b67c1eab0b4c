"""The layers, as imports: one plumbing layer under everything, a core that never imports its plug-ins.

- infra/ imports nothing of the suite's other packages; oci/ imports nothing of cluster/ or framework/;
  cluster/ imports nothing of framework/ (a provider knows nothing of tests).
- framework/ reaches providers only through the contract: no concrete provider module.
- One implementation per concern: only infra/process.py starts processes, only infra/kube.py builds an
  API client, only infra/ retries or polls (tenacity), only infra/files.py renames.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "conformance"
BENCH = Path(__file__).resolve().parents[1] / "bench"
CONCRETE_PROVIDERS = ("conformance.cluster.kind", "conformance.cluster.local", "conformance.cluster.existing")


def modules(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*.py") if not p.name.startswith("test_"))


def imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return found


def offending(directory: str, forbidden: tuple[str, ...]) -> dict[str, list[str]]:
    return {
        str(path.relative_to(PACKAGE.parent)): bad
        for path in modules(PACKAGE / directory)
        if (bad := sorted(m for m in imports(path) if m.startswith(forbidden)))
    }


@pytest.mark.parametrize(
    ("directory", "forbidden"),
    [
        ("infra", ("conformance.cluster", "conformance.framework", "conformance.oci", "conformance.matrix")),
        ("oci", ("conformance.cluster", "conformance.framework")),
        ("cluster", ("conformance.framework",)),
        ("framework", CONCRETE_PROVIDERS),
    ],
)
def test_a_layer_imports_only_what_is_below_it(directory: str, forbidden: tuple[str, ...]) -> None:
    assert offending(directory, forbidden) == {}


def everywhere() -> list[Path]:
    return [*modules(PACKAGE), *modules(BENCH)]


@pytest.mark.parametrize(
    ("what", "pattern", "owners"),
    [
        ("starts processes", r"^\s*(import subprocess|from subprocess import)", {"infra/process.py"}),
        ("builds an API client", r"new_client_from_config|ApiClient\(", {"infra/kube.py"}),
        ("retries or polls with tenacity", r"^\s*(from tenacity|import tenacity)", {"infra/wait.py", "infra/kube.py"}),
        ("renames a file", r"os\.replace\(|os\.rename\(|\.rename\(", {"infra/files.py"}),
        # a version pattern (\d+\.\d+ or (\d+)\.(\d+)) on a line without an IPv4 pattern (four numbers)
        (
            "parses a version with its own pattern",
            r"^(?!.*(\\d\+\\\.){3}).*\\d\+\)?\\\.\(?\\d\+",
            {"infra/versions.py"},
        ),
    ],
)
def test_one_module_per_concern(what: str, pattern: str, owners: set[str]) -> None:
    found = {
        str(path.relative_to(path.parents[1] if path.is_relative_to(BENCH) else PACKAGE))
        for path in everywhere()
        if re.search(pattern, path.read_text(), re.MULTILINE)
    }
    assert found <= owners, f"only {sorted(owners)} {what}; also: {sorted(found - owners)}"


def test_scripts_and_docs_name_modules_that_exist() -> None:
    """Shell scripts, CI and the README call modules by name; a rename must not leave one behind."""
    root = PACKAGE.parent
    texts = [root / "README.md", root / ".ci" / "run", *sorted((root / "scripts").iterdir())]
    named = {m for path in texts for m in re.findall(r"\bconformance(?:\.[a-z_]+)+", path.read_text())}
    packaged_data = {"conformance.manifests", "conformance.kind_files"}  # pyproject's package-dir mapping
    missing = sorted(
        name
        for name in named - packaged_data
        if not ((root / name.replace(".", "/")).with_suffix(".py").exists() or (root / name.replace(".", "/")).is_dir())
    )
    assert missing == []


def test_the_readme_names_files_that_exist() -> None:
    root = PACKAGE.parent
    text = (root / "README.md").read_text()
    paths = {p.rstrip(".,") for p in re.findall(r"\b(?:conformance|bench|tests|scripts)/[\w./-]+", text)}
    names = set(re.findall(r"`(\w+\.py)`", text))
    every = {path.name for path in root.rglob("*.py") if ".venv" not in path.parts}
    missing = sorted(p for p in paths if "test_" not in p and not (root / p).exists() and not p.endswith("/bench"))
    assert missing == [] and sorted(names - every) == []
