"""One command, several cluster configurations in a row, one table of what each did.

    python -m conformance.matrix --runtime cri-o --runtime containerd:v2.1.9 --runtime containerd:v2.3.7 \\
        --out matrix/runtimes
    python -m conformance.matrix --k8s-version v1.32.9 --k8s-version v1.36.3 --out matrix/versions
    scripts/dockerd exec python -m conformance.matrix --provider kind --node-runtimes cri-o,cri-o,containerd \\
        --node-runtimes cri-o,containerd:v2.1.9 --out matrix/kind

Each configuration (the product of `--k8s-version` and `--runtime`, or with kind of `--k8s-version` and
`--node-runtimes`, each defaulting to the provider's pin) gets a fresh cluster of `--provider` (local
by default) and a full run of the suite (`--report-dir <out>/<label>`); the results land in
`<out>/matrix.json` and `<out>/matrix.md`: test × configuration, each cell passed / failed / known
defect / not applicable (with the reason as a footnote). `--write-readme` puts the
markdown into README.md between the markers of that matrix, where a unit test keeps it current.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conformance.infra import readme
from conformance.infra.errors import ClusterError
from conformance.infra.files import write_atomic
from conformance.infra.process import run
from conformance.infra.progress import progress

ROOT = Path(__file__).resolve().parents[1]
RUN_TIMEOUT = 30 * 60.0
CELL = {"passed": "pass", "failed": "**FAIL**", "error": "**ERROR**", "known-defect": "known defect",
        "skipped": "skip"}  # fmt: skip


PROVIDERS = ("local", "kind")  # the providers that build the cluster a configuration names


@dataclass(frozen=True)
class Configuration:
    k8s_version: str | None
    runtime: str | None
    runtime_version: str | None
    provider: str = "local"
    node_runtimes: str | None = None  # kind: one runtime per node, e.g. cri-o,containerd:v2.1.9

    @property
    def label(self) -> str:
        parts = [self.k8s_version or "default-k8s", self.node_runtimes or self.runtime or "cri-o"]
        if self.runtime_version:
            parts.append(self.runtime_version)
        if self.provider != "local":
            parts.insert(0, self.provider)
        return "-".join(parts).replace("/", "_").replace(",", "+").replace(":", "-")

    def flags(self) -> list[str]:
        named = {
            "--k8s-version": self.k8s_version,
            "--runtime": self.runtime,
            "--runtime-version": self.runtime_version,
            "--node-runtimes": self.node_runtimes,
        }
        return [part for flag, value in named.items() if value for part in (flag, value)]


def configurations(
    k8s_versions: Sequence[str], runtimes: Sequence[str], provider: str = "local", node_runtimes: Sequence[str] = ()
) -> list[Configuration]:
    """The product of the axes; `runtime` is NAME or NAME:VERSION, `node_runtimes` one such per node (kind)."""
    if provider not in PROVIDERS:
        raise ClusterError(f"--provider {provider!r}: the matrix builds its clusters; choose one of {PROVIDERS}")
    if node_runtimes and (runtimes or provider != "kind"):
        raise ClusterError("--node-runtimes is kind's, and names every node's runtime: drop --runtime")
    found = []
    for k8s in k8s_versions or [""]:
        for nodes in node_runtimes:
            found.append(Configuration(k8s or None, None, None, provider, nodes))
        for runtime in runtimes or ([] if node_runtimes else [""]):
            name, _, version = runtime.partition(":")
            found.append(Configuration(k8s or None, name or None, version or None, provider))
    return found


def run_configuration(config: Configuration, out: Path) -> dict[str, Any]:
    """A fresh cluster of the configuration's provider, the full suite, the run's summary (or why there is none)."""
    cli = [sys.executable, "-m", "conformance.cluster"]
    report = out / config.label
    started = time.monotonic()
    down(config.provider)
    try:
        run([*cli, "up", "--provider", config.provider, *config.flags()], what=f"cluster up ({config.label})",
            timeout=RUN_TIMEOUT, heartbeat=60)  # fmt: skip
    except ClusterError as error:
        return {"label": config.label, "flags": config.flags(), "error": str(error).splitlines()[0]}
    up = time.monotonic() - started
    pytest = [sys.executable, "-m", "pytest", "-n", "auto", f"--cluster={config.provider}", "--reuse-cluster",
              f"--report-dir={report}", "-p", "no:cacheprovider", "-q", "--accept-known-defects"]  # fmt: skip
    result = run(pytest, what=f"suite on {config.label}", timeout=RUN_TIMEOUT, check=False, cwd=ROOT)
    report.mkdir(parents=True, exist_ok=True)
    write_atomic(report / "pytest.log", result.stdout + result.stderr)
    summary_file = report / "summary.json"
    if not summary_file.exists():
        return {"label": config.label, "flags": config.flags(), "error": f"pytest exited {result.returncode}"}
    summary = json.loads(summary_file.read_text())
    return {
        "label": config.label,
        "flags": config.flags(),
        "cluster": summary["cluster"],
        "verdict": summary["verdict"]["line"],
        "counts": summary["counts"],
        "seconds": {"up": round(up), "suite": round(time.monotonic() - started - up)},
        "tests": {
            t["nodeid"]: {"outcome": t["outcome"], "level": t["level"], "message": t["message"]}
            for t in summary["tests"]
        },
    }


def cell(test: dict[str, str] | None, footnotes: dict[str, int]) -> str:
    if test is None:
        return "–"
    if test["level"] == "not-applicable" or test["outcome"] == "skipped":
        # "artifact-read-only: <reason> [scope]" → "<reason>": behaviours that share a reason share its note.
        reason = re.sub(r"^[a-z0-9-]+: ", "", test["message"].split(" [", 1)[0])
        number = footnotes.setdefault(reason, len(footnotes) + 1)
        return f"n/a [{number}]" if test["level"] == "not-applicable" else f"skip [{number}]"
    return CELL.get(test["outcome"], test["outcome"])


def short_verdict(run: dict[str, Any]) -> str:
    """The verdict line up to its first ';', with an unavailability reason left to the footnotes."""
    if "verdict" not in run:
        return f"no run: {run.get('error', '?')[:120]}"
    line = str(run["verdict"]).split(";", 1)[0]
    return "NOT CONFORMANT: image volumes unavailable" if "unavailable" in line else line


def down(provider: str, check: bool = True) -> None:
    run([sys.executable, "-m", "conformance.cluster", "down", "--provider", provider],
        what=f"{provider} cluster down", timeout=600, check=check)  # fmt: skip


def column(run: dict[str, Any]) -> str:
    cluster = run.get("cluster")
    if not cluster:
        return run["label"]
    # A node group's label is "cri-o 1.36.3 (kubelet v1.36.3; nodes…)": the runtime and its version.
    groups = [group["label"].split(" (", 1)[0] for group in cluster.get("node_groups") or []]
    runtimes = " + ".join(groups) or cluster["runtime"].replace("://", " ")
    prefix = "" if cluster.get("provider", "local") == "local" else f"{cluster['provider']}: "
    return f"{prefix}{cluster['kubernetes']}<br>{runtimes}"


def render_markdown(matrix: dict[str, Any]) -> str:
    runs = matrix["runs"]
    header = "| test | " + " | ".join(column(r) for r in runs) + " |"
    lines = [header, "|---" * (len(runs) + 1) + "|"]
    lines.append("| *verdict* | " + " | ".join(short_verdict(r) for r in runs) + " |")
    lines.append(
        "| *seconds (up / suite)* | "
        + " | ".join(f"{r['seconds']['up']} / {r['seconds']['suite']}" if "seconds" in r else "–" for r in runs)
        + " |"
    )
    footnotes: dict[str, int] = {}
    tests = sorted({nodeid for r in runs for nodeid in r.get("tests", {})})
    for nodeid in tests:
        cells = [cell(r.get("tests", {}).get(nodeid), footnotes) for r in runs]
        lines.append(f"| `{nodeid.removeprefix('conformance/')}` | " + " | ".join(cells) + " |")
    lines.append("")
    lines += [f"[{number}] {reason.replace('|', '/')}  " for reason, number in footnotes.items()]
    return "\n".join(lines).rstrip() + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m conformance.matrix", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--k8s-version", action="append", default=[], help="a Kubernetes release (repeatable)")
    parser.add_argument("--runtime", action="append", default=[], help="NAME or NAME:VERSION (repeatable)")
    parser.add_argument(
        "--provider", default="local", choices=PROVIDERS, help="who builds each cluster (default local)"
    )
    parser.add_argument(
        "--node-runtimes",
        action="append",
        default=[],
        help="kind: one runtime per node, NAME[:VERSION],… (repeatable: one configuration each)",
    )
    parser.add_argument("--out", type=Path, required=True, help="directory for the reports and the matrix")
    parser.add_argument("--write-readme", metavar="NAME", help="put the table into README.md's NAME matrix section")
    parser.add_argument("--render-only", action="store_true", help="only re-render <out>/matrix.json")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.render_only:
        matrix = json.loads((args.out / "matrix.json").read_text())
    else:
        runs = []
        try:
            for config in configurations(args.k8s_version, args.runtime, args.provider, args.node_runtimes):
                progress(f"matrix: {config.label}")
                runs.append(run_configuration(config, args.out))
        except ClusterError as error:
            print(f"ivc: {error}", file=sys.stderr)
            return 2
        finally:
            down(args.provider, check=False)
        matrix = {"runs": runs}
        write_atomic(args.out / "matrix.json", json.dumps(matrix, indent=1, sort_keys=True) + "\n")
    table = render_markdown(matrix)
    write_atomic(args.out / "matrix.md", table)
    if args.write_readme:
        readme.write_section(f"{args.write_readme}-matrix", table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
