"""The plugin's contract with users, checked by running pytest itself (no cluster needed)."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_pytest(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_collect_only_never_obtains_a_cluster():
    # A kubeconfig that does not exist would fail at once if anything tried to use it.
    result = run_pytest("--collect-only", "-q", "--cluster=existing", "--kubeconfig=/nonexistent", "conformance")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "tests collected" in result.stdout


def test_a_bad_kubeconfig_is_one_actionable_line():
    result = run_pytest(
        "-q",
        "--cluster=existing",
        "--kubeconfig=/nonexistent",
        "--registry=127.0.0.1:1",
        "conformance/test_contents.py",
    )
    assert result.returncode != 0
    errors = [line for line in (result.stdout + result.stderr).splitlines() if "ivc:" in line]
    assert len(errors) == 1, result.stdout + result.stderr
    assert "/nonexistent" in errors[0]
    assert "Traceback" not in result.stdout + result.stderr


def test_a_path_option_written_with_a_space_is_one_line_not_a_wrong_rootdir(tmp_path):
    # pytest would take the kubeconfig's directory for its rootdir, losing testpaths and collecting tests/.
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("{}")
    result = run_pytest("--collect-only", "-q", "--cluster=existing", "--kubeconfig", str(kubeconfig))
    assert result.returncode == 4, result.stdout + result.stderr
    assert f"ERROR: ivc: write --kubeconfig={kubeconfig} (with '='):" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_markers_are_registered_with_documentation():
    result = run_pytest("--markers")
    for marker in ("behaviour(name)", "conformance", "slow", "runs_without_feature"):
        assert f"@pytest.mark.{marker}:" in result.stdout


def test_list_artifacts_is_offline_and_names_every_catalog_entry():
    from conformance.framework.artifacts import CATALOG

    result = run_pytest("--list-artifacts", "--registry=registry.example:5000")
    assert result.returncode == 0, result.stdout + result.stderr
    for name in CATALOG:
        assert f"registry.example:5000/ivc/artifacts/{name}:" in result.stdout


def test_the_installed_plugin_runs_the_package_from_any_directory(tmp_path):
    # --pyargs finds the tests in the installed package; the entry point brings the plugin and fixtures.
    result = run_pytest("--pyargs", "conformance", "--collect-only", "-q", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "test_contents.py::test_seed_tree_is_mounted_with_exact_contents[Always]" in result.stdout


def write_summary(directory: Path, outcomes: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    tests = [{"nodeid": nodeid, "outcome": outcome} for nodeid, outcome in outcomes.items()]
    (directory / "summary.json").write_text(json.dumps({"tests": tests}))
    return directory


def test_rerun_failed_selects_exactly_the_failed_and_errored_tests(tmp_path):
    earlier = write_summary(
        tmp_path / "earlier",
        {
            "conformance/test_contents.py::test_image_volume_is_mounted_by_digest": "failed",
            # an installed run's node id: the package's location does not matter
            "lib/python3.11/site-packages/conformance/test_read_only.py::test_write_attempts_fail_with_erofs[touch]": (
                "error"
            ),
            "conformance/test_contents.py::test_image_volume_is_mounted_by_tag_and_digest": "passed",
        },
    )
    result = run_pytest("--collect-only", "-q", f"--rerun-failed={earlier}", "conformance")
    assert result.returncode == 0, result.stdout + result.stderr
    selected = [line for line in result.stdout.splitlines() if "::" in line]
    assert sorted(selected) == [  # in run order (run_order), which is not file order
        "conformance/test_contents.py::test_image_volume_is_mounted_by_digest",
        "conformance/test_read_only.py::test_write_attempts_fail_with_erofs[touch]",
    ]
    counts = re.search(r"2/(\d+) tests collected \((\d+) deselected\)", result.stdout)
    assert counts and int(counts[1]) - int(counts[2]) == 2, result.stdout


@pytest.mark.parametrize(
    ("outcomes", "message"),
    [(None, "no readable summary.json"), ({"conformance/test_contents.py::x": "passed"}, "nothing to rerun")],
)
def test_rerun_failed_without_failures_is_one_actionable_line(tmp_path, outcomes, message):
    earlier = write_summary(tmp_path, outcomes) if outcomes else tmp_path / "missing"
    result = run_pytest("--collect-only", "-q", f"--rerun-failed={earlier}", "conformance")
    assert result.returncode != 0
    errors = [line for line in (result.stdout + result.stderr).splitlines() if "ivc:" in line]
    assert len(errors) == 1 and message in errors[0], result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_push_artifacts_needs_a_registry_and_says_so_in_one_line():
    result = run_pytest("--push-artifacts")
    assert result.returncode != 0
    errors = [line for line in (result.stdout + result.stderr).splitlines() if "ivc:" in line]
    assert len(errors) == 1 and "--registry HOST:PORT is required" in errors[0], result.stdout + result.stderr


def test_n_auto_starts_the_suites_worker_count_not_xdists(tmp_path):
    """`-n auto` is the suite's (twice the cores, 4 to 8), whichever plugin pluggy asks first."""
    (tmp_path / "test_one.py").write_text("def test_one():\n    pass\n")
    result = run_pytest("-n", "auto", str(tmp_path / "test_one.py"), cwd=tmp_path)
    expected = min(8, max(4, 2 * (os.cpu_count() or 1)))
    assert f"created: {expected}/{expected} workers" in result.stdout, result.stdout + result.stderr
