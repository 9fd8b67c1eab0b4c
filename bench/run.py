"""Benchmark (not a test): cluster bring-up and a warm full run at -n 1 vs -n auto.

    .venv/bin/python bench/run.py [--cluster local] [--bring-up] [-- extra pytest args]

Needs a running cluster for the runs (it passes --reuse-cluster). With --bring-up it first
times `down` + `up` of the provider (warm: binaries cached). Prints one figure per line.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed(command: list[str]) -> tuple[float, int]:
    started = time.monotonic()
    rc = subprocess.run(command, cwd=ROOT).returncode
    return time.monotonic() - started, rc


def slowest_test(junit: Path) -> tuple[str, float]:
    cases = ET.parse(junit).getroot().iter("testcase")
    worst = max(cases, key=lambda case: float(case.get("time", 0)))
    return f"{worst.get('classname')}::{worst.get('name')}", float(worst.get("time", 0))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cluster", default="local")
    parser.add_argument("--bring-up", action="store_true", help="also time a warm down+up of the cluster")
    parser.add_argument("pytest_args", nargs="*")
    args = parser.parse_args()
    figures: list[str] = []
    if args.bring_up:
        cli = [sys.executable, "-m", "conformance.cluster"]
        down, _ = timed([*cli, "down", "--provider", args.cluster])
        up, rc = timed([*cli, "up", "--provider", args.cluster])
        if rc:
            print(f"bench: cluster up failed (exit {rc})", file=sys.stderr)
            return rc
        figures += [f"cluster down: {down:.1f} s", f"cluster up (warm, binaries cached): {up:.1f} s"]
    walls: dict[str, float] = {}
    slowest: tuple[str, float] = ("", 0.0)
    for workers in ("1", "auto"):
        with tempfile.TemporaryDirectory(prefix=f"ivc-bench-n{workers}-") as report_dir:
            # `--opt=value` form: a bare directory argument would make pytest pick it as rootdir.
            command = [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "-n",
                workers,
                f"--cluster={args.cluster}",
                "--reuse-cluster",
                f"--report-dir={report_dir}",
                *(args.pytest_args or ["conformance"]),
            ]
            walls[workers], rc = timed(command)
            if rc not in (0, 1):
                print(f"bench: pytest -n {workers} exited {rc}", file=sys.stderr)
                return rc
            if workers == "1":
                slowest = slowest_test(Path(report_dir) / "junit_01.xml")
    figures += [
        f"full run -n 1: {walls['1']:.1f} s",
        f"full run -n auto: {walls['auto']:.1f} s",
        f"speed-up: {walls['1'] / walls['auto']:.2f}x",
        f"slowest test: {slowest[0]} {slowest[1]:.1f} s",
        f"-n auto wall / slowest test: {walls['auto'] / max(slowest[1], 0.001):.1f}",
    ]
    print("\n".join(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
