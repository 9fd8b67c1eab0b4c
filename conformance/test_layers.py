"""The volume is the merged image tree: the highest layer wins, whiteouts and opaque directories
hide lower entries, and links, modes, owners and names arrive as the layers describe them.

Everything here reads the `layered` artifact (framework/artifacts.py) through one Pod per module:
the probes are read-only, and a Pod each would multiply the run time.
"""

import shlex

import pytest

from conformance.framework.artifacts import LARGE_FILE_SHA256, LARGE_FILE_SIZE


@pytest.fixture
def layered(shared_pod):
    return shared_pod("layered")


def stat(pod, fmt: str, path: str) -> str:
    result = pod.sh(f"stat -c {shlex.quote(fmt)} {shlex.quote(path)}")
    assert result.returncode == 0, f"cannot stat {path}: {result.output.strip()}"
    return result.stdout.strip()


@pytest.mark.behaviour("layer-override")
def test_the_highest_layer_wins(layered):
    # override.txt is in layers 0, 1 and 2.
    expected = "from layer 2"
    content = layered.read("/volume/override.txt")
    assert content == expected, f"override.txt: expected the highest layer's {expected!r}, saw {content!r}"


@pytest.mark.behaviour("layer-whiteout")
@pytest.mark.parametrize("hidden", ["file.txt", "dir"], ids=["file", "directory"])
def test_whiteout_hides_the_lower_entry(layered, hidden):
    expected = {"kept.txt"}
    entries = layered.listdir("/volume/whiteout")
    assert entries == expected, f"whiteout/: expected {sorted(expected)}, saw {sorted(entries)}"
    lookup = layered.sh(f"test -e /volume/whiteout/{hidden} || test -L /volume/whiteout/{hidden}")
    assert lookup.returncode != 0, f"whiteout/{hidden} is hidden from ls but can still be looked up"
    assert layered.read("/volume/whiteout/kept.txt") == "kept"


@pytest.mark.behaviour("layer-opaque-directory")
def test_opaque_directory_shows_only_its_own_layer(layered):
    expected = {"upper.txt"}  # the opaque layer's own entry; the lower ones are hidden
    entries = layered.listdir("/volume/opaque")
    assert entries == expected, f"opaque/: expected {sorted(expected)}, saw {sorted(entries)}"
    assert layered.read("/volume/opaque/upper.txt") == "from the opaque layer"


@pytest.mark.behaviour("layer-symlinks")
@pytest.mark.parametrize(
    ("link", "target", "content"),
    [
        ("relative", "target.txt", "link target"),
        ("parent", "../override.txt", "from layer 2"),
        # Resolved against the container's root, where /links does not exist: readlink only.
        ("absolute", "/links/target.txt", None),
    ],
)
def test_symlink_is_kept_verbatim(layered, link, target, content):
    path = f"/volume/links/{link}"
    result = layered.sh(f"test -L {path} && readlink {path}")
    assert result.returncode == 0, f"{path} is not a symlink: {result.output.strip()}"
    assert result.stdout.strip() == target, f"{path} points to {result.stdout.strip()!r}, expected {target!r}"
    if content is not None:
        seen = layered.read(path)
        assert seen == content, f"through {path} expected {content!r}, saw {seen!r}"


@pytest.mark.behaviour("layer-hardlink")
def test_hardlink_shares_the_inode_of_its_target(layered):
    target = stat(layered, "%i %h", "/volume/links/target.txt")
    link = stat(layered, "%i %h", "/volume/links/hardlink")
    assert link == target, f"hardlink (inode, links) {link!r} differs from its target's {target!r}"
    expected_links = "2"
    assert target.split()[1] == expected_links, f"expected a link count of {expected_links}, saw {target.split()[1]}"
    assert layered.read("/volume/links/hardlink") == "link target"


@pytest.mark.behaviour("layer-file-modes")
@pytest.mark.parametrize(
    ("path", "mode"),
    [("file-750", "750"), ("file-600", "600"), ("file-644", "644"), ("dir-755", "755"), ("dir-700", "700")],
)
def test_mode_is_preserved(layered, path, mode):
    seen = stat(layered, "%a", f"/volume/modes/{path}")
    assert seen == mode, f"modes/{path}: expected mode {mode}, saw {seen}"


@pytest.mark.behaviour("layer-ownership")
@pytest.mark.parametrize(
    ("path", "owner"),
    [("owned.txt", "1234:5678"), ("owned-dir", "1234:5678"), ("root.txt", "0:0")],
)
def test_owner_is_preserved(layered, path, owner):
    seen = stat(layered, "%u:%g", f"/volume/owners/{path}")
    assert seen == owner, f"owners/{path}: expected uid:gid {owner}, saw {seen}"


@pytest.mark.behaviour("layer-empty-directory")
def test_empty_directory_exists_and_is_empty(layered):
    assert stat(layered, "%F", "/volume/empty") == "directory"
    expected: set[str] = set()
    entries = layered.listdir("/volume/empty")
    assert entries == expected, f"empty/: expected {sorted(expected)}, saw {sorted(entries)}"


@pytest.mark.behaviour("many-files")
def test_many_small_files_are_all_there_with_their_contents(layered):
    # One exec for all 500: name=content per line.
    result = layered.sh('for f in /volume/many/*; do printf "%s=%s\\n" "${f##*/}" "$(cat "$f")"; done')
    assert result.returncode == 0, result.output
    seen = dict(line.split("=", 1) for line in result.stdout.splitlines())
    expected = {f"{i:03d}": f"small file {i}" for i in range(500)}
    assert len(seen) == len(expected), f"expected {len(expected)} files in many/, saw {len(seen)}"
    wrong = [
        f"{name}: expected {expected.get(name)!r}, saw {content!r}"
        for name, content in sorted(seen.items())
        if expected.get(name) != content
    ]
    assert not wrong, f"{len(wrong)} files in many/ differ or are unexpected, e.g. {wrong[:3]}"


@pytest.mark.behaviour("non-ascii-names")
def test_non_ascii_names_and_contents(layered):
    # busybox ls prints '?' for non-ASCII without a locale; the shell's glob gives the raw names.
    listed = layered.sh('for f in /volume/unicode/*; do printf "%s\\n" "${f##*/}"; done').stdout.split("\n")
    expected = {"grüße.txt": "grüße", "日本語.txt": "日本語", "emoji-🙂.txt": "🙂"}
    assert set(filter(None, listed)) == set(expected), f"unicode/ holds {sorted(filter(None, listed))}"
    for name, content in expected.items():
        seen = layered.read(f"/volume/unicode/{name}")
        assert seen == content, f"unicode/{name}: expected {content!r}, saw {seen!r}"


@pytest.mark.slow
@pytest.mark.behaviour("large-file")
def test_large_file_arrives_intact(launch, artifacts):
    pod = launch("basic", reference=artifacts["large"].reference)
    size = stat(pod, "%s", "/volume/large.bin")
    assert size == str(LARGE_FILE_SIZE), f"large.bin: expected {LARGE_FILE_SIZE} bytes, saw {size}"
    result = pod.sh("sha256sum /volume/large.bin", timeout=120)
    assert result.returncode == 0, result.output
    digest = result.stdout.split()[0]
    assert digest == LARGE_FILE_SHA256, f"large.bin: expected sha256 {LARGE_FILE_SHA256}, saw {digest}"
