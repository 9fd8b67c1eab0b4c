"""Benchmark (not a test): what a run costs, stage by stage, measured in one go so the ratios compare.

    .venv/bin/python bench/run.py [--workers 1 2 4 8] [--kind] [--out bench/results] [--write-readme]

1. bring-up of the local cluster (warm: binaries cached; `down` first) and, with --kind, of the kind
   cluster (node image cached), each also torn down again;
2. the warm full suite on the local cluster at each worker count (`--reuse-cluster`), `--repeat` times
   each (the median run is reported, with the range): wall time and its stages (cluster, session =
   artifacts + runtime probe, tests, disruptive = the tests that restart a node's kubelet or runtime,
   which run last and alone: from the end of the last other test to theirs, rest = interpreter start and
   cleanup), the Pods the run created, their start latency (creation to Running, p50/p95, as the suite
   saw it) and the slowest test (junit).
   Each run starts on a quiet cluster: the namespaces of earlier runs are gone.

Writes `<out>/bench.json` and `<out>/bench.md`; `--write-readme` puts the table into README.md between
`<!-- bench:begin -->` and `<!-- bench:end -->`. Needs root and what the providers need.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from conformance.framework.namespaces import RUN_LABEL
from conformance.framework.shared_pods import PRESTARTED
from conformance.infra import process, readme
from conformance.infra.files import write_atomic
from conformance.infra.kube import Kube
from conformance.infra.wait import NotYet, wait_for

ROOT = Path(__file__).resolve().parents[1]
QUIET_CPU = 0.1  # the control plane's idle load is ~2-5 %


def timed(command: list[str]) -> tuple[float, int]:
    started = time.monotonic()
    rc = process.run(command, what=command[-1], cwd=ROOT, check=False, capture=False, timeout=None).returncode
    return time.monotonic() - started, rc


def cluster(*args: str) -> list[str]:
    return [sys.executable, "-m", "conformance.cluster", *args]


def up(provider: str) -> float:
    """Seconds of a warm `up` from nothing; exits on failure."""
    timed(cluster("down", "--provider", provider))
    seconds, rc = timed(cluster("up", "--provider", provider))
    if rc:
        sys.exit(f"bench: {provider} up failed (exit {rc})")
    return round(seconds, 1)


def down(provider: str) -> float:
    seconds, rc = timed(cluster("down", "--provider", provider))
    if rc:
        sys.exit(f"bench: {provider} down failed (exit {rc})")
    return round(seconds, 1)


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def local_kubeconfig() -> str:
    """KUBECONFIG from `python -m conformance.cluster env --provider local` (export KUBECONFIG=… lines)."""
    env = process.run(cluster("env", "--provider", "local"), what="local cluster env", cwd=ROOT)
    exports = dict(line.removeprefix("export ").split("=", 1) for line in env.stdout.splitlines() if "=" in line)
    return exports["KUBECONFIG"]


def busy_fraction(seconds: float = 2.0) -> float:
    """How busy the machine's CPUs were over `seconds` (from /proc/stat)."""

    def sample() -> tuple[int, int]:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return sum(values), values[3] + values[4]  # total, idle + iowait

    total0, idle0 = sample()
    time.sleep(seconds)  # a sampling window, not a wait for an outcome
    total1, idle1 = sample()
    return 1 - (idle1 - idle0) / max(total1 - total0, 1)


def wait_quiet(kubeconfig: str) -> None:
    """Until no namespace of an earlier run is left and the node has finished tearing down its Pods
    (force-deleted Pods leave the API at once; the kubelet and runtime clean up afterwards)."""
    kube = Kube(kubeconfig)

    def quiet() -> None:
        left = kube.list_namespaces(RUN_LABEL)
        if left:
            raise NotYet(f"{len(left)} namespaces of earlier runs")
        if (busy := busy_fraction()) > QUIET_CPU:
            raise NotYet(f"CPUs {busy:.0%} busy")

    wait_for("a quiet cluster", quiet, timeout=300, interval=1.0)


def disruptive_seconds(tests: list[dict[str, Any]]) -> float:
    """The run's wall time that its disruptive tests take alone: they start once every other test has
    finished and run one at a time, so from the end of the last other test to the end of the last
    disruptive one (fixtures included: a restart's Pods go with its teardown)."""
    ends = [test["span"][1] for test in tests if test.get("disruptive") and test["span"][1]]
    others = [test["span"][1] for test in tests if not test.get("disruptive") and test["span"][1]]
    if not ends:
        return 0.0
    if not others:  # only disruptive tests ran: all of their time
        return round(max(ends) - min(test["span"][0] for test in tests if test.get("disruptive")), 2)
    return round(max(0.0, max(ends) - max(others)), 2)


def suite_run(workers: int, pytest_args: list[str], kubeconfig: str) -> dict[str, Any]:
    wait_quiet(kubeconfig)
    with tempfile.TemporaryDirectory(prefix=f"ivc-bench-n{workers}-") as report_dir:
        command = [
            sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", str(workers),
            "--cluster=local", "--reuse-cluster", f"--report-dir={report_dir}", *pytest_args,
        ]  # fmt: skip
        wall, rc = timed(command)
        if rc not in (0, 1):
            sys.exit(f"bench: pytest -n {workers} exited {rc}")
        summary = json.loads((Path(report_dir) / "summary.json").read_text())
        cases = list(ET.parse(Path(report_dir) / "junit_01.xml").getroot().iter("testcase"))
    slowest = max(cases, key=lambda case: float(case.get("time", 0)))
    pods = [seconds for test in summary["tests"] for seconds in test.get("pods", [])]
    starts = [seconds for seconds in pods if seconds is not None]
    # the controller's shared Pods: the prestarted shapes, per node group the probe ran on
    session_pods = len(PRESTARTED) * sum(1 for group in summary["cluster"]["node_groups"] if group["runtime_probe"])
    stages = dict(summary["stages"])
    disruptive = disruptive_seconds(summary["tests"])
    stages["tests"] = round(stages["tests"] - disruptive, 2)
    stages["disruptive"] = disruptive
    return {
        "workers": workers,
        "wall": round(wall - disruptive, 1),
        "stages": {**stages, "rest": round(wall - sum(stages.values()), 2)},
        "tests": len(summary["tests"]),
        "verdict": summary["verdict"]["line"],
        "pods": len(pods) + session_pods,
        "pod_start_p50": round(statistics.median(starts), 2) if starts else 0.0,
        "pod_start_p95": round(percentile(starts, 0.95), 2),
        "slowest_test": f"{slowest.get('classname', '').rsplit('.', 1)[-1]}::{slowest.get('name')}",
        "slowest_seconds": round(float(slowest.get("time", 0)), 1),
    }


def repeated(workers: int, repeat: int, pytest_args: list[str], kubeconfig: str) -> dict[str, Any]:
    """The median of `repeat` runs (by wall time), with every run's wall time."""
    runs = sorted((suite_run(workers, pytest_args, kubeconfig) for _ in range(repeat)), key=lambda run: run["wall"])
    return {**runs[len(runs) // 2], "walls": [run["wall"] for run in runs]}


def markdown(result: dict[str, Any]) -> str:
    lines = [f"Measured {result['date']} on {result['machine']} (`bench/run.py`):", ""]
    lines += ["| stage | seconds |", "|---|---|"]
    for provider, times in result["bring_up"].items():
        lines.append(f"| {provider} cluster up (warm) / down | {times['up']} / {times['down']} |")
    columns = (
        "workers",
        "warm full run without disruptive tests (s), median (all runs)",
        "cluster / session / tests / rest (s)",
        "disruptive tests (s)",
        "tests",
        "Pods created (session + tests)",
        "tests' Pod start p50 / p95 (s)",
        "slowest test (s)",
        "wall ÷ slowest",
    )
    lines += ["", "| " + " | ".join(columns) + " |", "|---" * len(columns) + "|"]
    for run in result["runs"]:
        ratio = run["wall"] / max(run["slowest_seconds"], 0.1)
        stages = " / ".join(f"{run['stages'][name]:.1f}" for name in ("cluster", "session", "tests", "rest"))
        lines.append(
            f"| {run['workers']} | **{run['wall']}** ({', '.join(map(str, run['walls']))}) | {stages} | "
            f"{run['stages']['disruptive']:.1f} | "
            f"{run['tests']} | {run['pods']} | {run['pod_start_p50']} / {run['pod_start_p95']} | "
            f"{run['slowest_seconds']} (`{run['slowest_test']}`) | {ratio:.1f} |"
        )
    verdicts = sorted({run["verdict"] for run in result["runs"]})
    lines += ["", f"Verdict of every run: {'; '.join(verdicts)}"]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--repeat", type=int, default=3, help="runs per worker count (the median is reported)")
    parser.add_argument("--kind", action="store_true", help="also time the kind cluster's bring-up")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--write-readme", action="store_true")
    parser.add_argument("--suite-only", action="store_true", help="no bring-up: the running local cluster's suite")
    parser.add_argument("pytest_args", nargs="*", help="after --: extra pytest arguments")
    args = parser.parse_args()
    result: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{os.cpu_count()} cores",
        "bring_up": {},
        "runs": [],
    }
    if args.kind:
        result["bring_up"]["kind (2 nodes)"] = {"up": up("kind"), "down": down("kind")}
    local_up = None if args.suite_only else up("local")  # --suite-only: the running cluster, which stays up
    try:
        kubeconfig = local_kubeconfig()
        for workers in args.workers:
            result["runs"].append(repeated(workers, args.repeat, args.pytest_args, kubeconfig))
    finally:
        if local_up is not None:
            result["bring_up"]["local"] = {"up": local_up, "down": down("local")}
    args.out.mkdir(parents=True, exist_ok=True)
    write_atomic(args.out / "bench.json", json.dumps(result, indent=2) + "\n")
    table = markdown(result)
    write_atomic(args.out / "bench.md", table)
    if args.write_readme:
        readme.write_section("bench", table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
