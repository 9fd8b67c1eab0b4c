"""Read a Prometheus text page (the kubelet's /metrics through the apiserver's node proxy). Pure functions.

Only what the suite needs: sample values by series, and the stability level the Kubernetes metrics
framework writes at the start of a metric's HELP text (`[ALPHA]`, `[BETA]`, `[STABLE]`).
"""

from __future__ import annotations

import math
import re

# name, optional {labels}, value, optional timestamp (text exposition format 0.0.4)
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)(?:\s+-?\d+)?\s*$")
_VALUES = {"+Inf": math.inf, "-Inf": -math.inf, "NaN": math.nan}


def samples(text: str) -> dict[str, float]:
    """Every sample on the page, keyed by its series exactly as written: `name` or `name{labels}`."""
    found: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if match is None:
            continue
        name, labels, raw = match.groups()
        try:
            value = _VALUES[raw] if raw in _VALUES else float(raw)
        except ValueError:
            continue  # not a sample line after all; a page with junk must not hide the rest
        found[name + (labels or "")] = value
    return found


def counter(text: str, name: str) -> float | None:
    """The value of the unlabelled series `name`, or None when the page does not have it."""
    return samples(text).get(name)


def stability(text: str, name: str) -> str | None:
    """`ALPHA`, `BETA`, `STABLE`… from `# HELP <name> [LEVEL] …`; None without a HELP line or a level."""
    match = re.search(rf"^# HELP {re.escape(name)} \[([A-Z]+)\]", text, re.MULTILINE)
    return match[1] if match else None
