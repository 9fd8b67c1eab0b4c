"""The plugin's contract with users, checked by running pytest itself (no cluster needed)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_pytest(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=ROOT,
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
