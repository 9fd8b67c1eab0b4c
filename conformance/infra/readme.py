"""The one way to rewrite a generated section of README.md: the text between `<!-- NAME:begin -->` and
`<!-- NAME:end -->` (the test table, the matrices, the benchmark), so a unit test can keep each current."""

from __future__ import annotations

from pathlib import Path

from conformance.infra.files import write_atomic

# The checkout's README (an installed package has none; generating sections is a checkout's business).
README = Path(__file__).resolve().parents[2] / "README.md"


def markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:begin -->", f"<!-- {name}:end -->"


def with_section(text: str, name: str, content: str) -> str:
    """`text` with section `name` holding `content` (which ends with a newline). ValueError without markers."""
    begin, end = markers(name)
    head, found, rest = text.partition(begin)
    if not found or end not in rest:
        raise ValueError(f"README.md has no {begin} … {end} section")
    _, _, tail = rest.partition(end)
    return f"{head}{begin}\n{content}{end}{tail}"


def write_section(name: str, content: str, readme: Path = README) -> None:
    write_atomic(readme, with_section(readme.read_text(), name, content))
