"""`PodUnderTest.sh_each` / `view` split one exec's output back into one result per script.

The exec is a local /bin/sh here: what is under test is the batching, which must give every script
the result it would have had alone (exact bytes, its own stderr and exit status)."""

import subprocess

import pytest

from conformance.framework.pods import PodUnderTest, tree_directories
from conformance.infra.kube import ExecResult


class LocalShell:
    """Stands in for Kube.exec only: runs the command on this host."""

    def exec(self, namespace, pod, command, container=None, timeout=60):
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
        return ExecResult(done.returncode, done.stdout, done.stderr)


@pytest.fixture
def pod():
    return PodUnderTest(LocalShell(), "ns", "pod")  # type: ignore[arg-type]


SCRIPTS = [
    "printf 2",  # no trailing newline
    "printf 'a\\n\\n'",  # trailing blank line kept
    "echo out; echo err >&2; exit 3",
    "printf 'grüße 🙂'",
    "printf '\\nivc-0000 0\\n'",  # looks like a marker, is not this batch's
    "true",
]


def test_each_script_gets_what_it_would_get_alone(pod):
    batched = pod.sh_each(SCRIPTS)
    alone = [pod.sh(script) for script in SCRIPTS]
    assert batched == alone


def test_view_reads_files_and_lists_directories_after_the_scripts(pod, tmp_path):
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "file").write_text("1")
    (tmp_path / "file").write_text("2")
    seen = pod.view(f"echo x > {tmp_path}/new", files=[f"{tmp_path}/file"], dirs=[str(tmp_path)])
    assert seen.results[0].returncode == 0
    assert seen.files == {f"{tmp_path}/file": "2"}
    assert seen.entries == {str(tmp_path): {"dir", "file", "new"}}  # the script ran first


def test_assert_tree_checks_every_level(pod, tmp_path):
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "file").write_text("1")
    (tmp_path / "file").write_text("2")
    pod.assert_tree(str(tmp_path), {"dir/file": "1", "file": "2"})
    (tmp_path / "dir" / "sibling").write_text("")
    with pytest.raises(AssertionError, match=r"dir: expected \['file'\], saw \['file', 'sibling'\]"):
        pod.assert_tree(str(tmp_path), {"dir/file": "1", "file": "2"})


def test_an_unreadable_file_fails_with_the_shell_message(pod, tmp_path):
    with pytest.raises(AssertionError, match=r"cannot read .*/absent in pod/main: cat: "):
        pod.read(f"{tmp_path}/absent")


def test_an_exec_that_did_not_run_every_script_says_so(pod):
    with pytest.raises(AssertionError, match="ran 1 of 3 scripts"):
        pod.sh_each(["true", "kill -9 $$", "true"])  # the batch's own shell dies after the first


def test_tree_directories():
    assert tree_directories({"dir/file": "1", "file": "2"}) == {"": {"dir", "file"}, "dir": {"file"}}
    assert tree_directories(["a/b/c"]) == {"": {"a"}, "a": {"b"}, "a/b": {"c"}}
