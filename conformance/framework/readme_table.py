"""The README's test table, generated from the tests' behaviour markers and the expectation table.

    python -m conformance.framework.readme_table            # print the markdown table
    python -m conformance.framework.readme_table --write    # refresh it in README.md

tests/test_readme_table.py fails when README.md is out of date.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from conformance.framework.expectations import TABLE, Level
from conformance.infra import readme

ROOT = Path(__file__).resolve().parents[2]
SECTION = "test-table"
SHORT = {
    Level.KNOWN_DEFECT: "known defect",
    Level.REQUIRED: "required",
    Level.OPTIONAL: "optional",
    Level.INFORMATIONAL: "informational",
    Level.NOT_APPLICABLE: "n/a",
}


class _Collector:
    def __init__(self) -> None:
        self.rows: list[tuple[str, str]] = []

    @pytest.hookimpl(tryfirst=True)  # file order, before the plugin sorts the run (`run_order`)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        for item in items:
            marker = item.get_closest_marker("behaviour")
            name = item.nodeid.split("[", 1)[0]
            row = (name, marker.args[0] if marker else "")
            if row not in self.rows:
                self.rows.append(row)


def classification(behaviour: str) -> str:
    """Every row of the behaviour, in lookup order: 'required (k8s >=1.33.0); n/a (k8s <1.33.0)'."""
    return "; ".join(f"{SHORT[rule.level]} ({rule.scope()})" for rule in TABLE if rule.behaviour == behaviour)


def markdown() -> str:
    collector = _Collector()
    code = pytest.main(
        ["--collect-only", "-q", "-p", "no:cacheprovider", str(ROOT / "conformance")], plugins=[collector]
    )
    if code != 0:
        raise SystemExit(f"collection failed ({code})")
    lines = ["| test | behaviour | classification (Kubernetes, runtime) |", "|---|---|---|"]
    for name, behaviour in collector.rows:
        lines.append(f"| `{name.removeprefix('conformance/')}` | {behaviour} | {classification(behaviour)} |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    table = markdown()
    if "--write" in argv:
        readme.write_section(SECTION, table + "\n")
    else:
        print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
