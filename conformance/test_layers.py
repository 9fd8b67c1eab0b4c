"""The volume is the merged image tree: the highest layer wins, whiteouts and opaque directories
hide lower entries, and links, modes, owners and names arrive as the layers describe them.

Everything here reads the `layered` artifact (framework/artifacts.py) through one Pod shared by the
run (framework/shared_pods.py): the probes are read-only, and a Pod each would multiply the run time.
"""

import shlex

import pytest

from conformance.framework.artifacts import LARGE_FILE_SHA256, LARGE_FILE_SIZE


@pytest.fixture
def layered(shared_pod):
    return shared_pod("layered")


def stat_script(fmt: str, path: str) -> str:
    return f"stat -c {shlex.quote(fmt)} {shlex.quote(path)}"


def stat_output(result, path: str) -> str:
    assert result.returncode == 0, f"cannot stat {path}: {result.output.strip()}"
    return result.stdout.strip()


def stat(pod, fmt: str, path: str) -> str:
    return stat_output(pod.sh(stat_script(fmt, path)), path)


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
    seen = layered.view(
        f"test -e /volume/whiteout/{hidden} || test -L /volume/whiteout/{hidden}",
        files=["/volume/whiteout/kept.txt"],
        dirs=["/volume/whiteout"],
    )
    entries = seen.entries["/volume/whiteout"]
    assert entries == expected, f"whiteout/: expected {sorted(expected)}, saw {sorted(entries)}"
    assert seen.results[0].returncode != 0, f"whiteout/{hidden} is hidden from ls but can still be looked up"
    assert seen.files["/volume/whiteout/kept.txt"] == "kept"


@pytest.mark.behaviour("layer-opaque-directory")
def test_opaque_directory_shows_only_its_own_layer(layered):
    # the opaque layer's own entry; the lower ones are hidden
    layered.assert_tree("/volume/opaque", {"upper.txt": "from the opaque layer"})


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
    seen = layered.view(f"test -L {path} && readlink {path}", files=[path] if content is not None else [])
    result = seen.results[0]
    assert result.returncode == 0, f"{path} is not a symlink: {result.output.strip()}"
    assert result.stdout.strip() == target, f"{path} points to {result.stdout.strip()!r}, expected {target!r}"
    if content is not None:
        assert seen.files[path] == content, f"through {path} expected {content!r}, saw {seen.files[path]!r}"


@pytest.mark.behaviour("layer-hardlink")
def test_hardlink_shares_the_inode_of_its_target(layered):
    paths = ("/volume/links/target.txt", "/volume/links/hardlink")
    seen = layered.view(*(stat_script("%i %h", path) for path in paths), files=["/volume/links/hardlink"])
    target, link = (stat_output(result, path) for result, path in zip(seen.results, paths, strict=True))
    assert link == target, f"hardlink (inode, links) {link!r} differs from its target's {target!r}"
    expected_links = "2"
    assert target.split()[1] == expected_links, f"expected a link count of {expected_links}, saw {target.split()[1]}"
    assert seen.files["/volume/links/hardlink"] == "link target"


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
    seen = layered.view(stat_script("%F", "/volume/empty"), dirs=["/volume/empty"])
    assert stat_output(seen.results[0], "/volume/empty") == "directory"
    expected: set[str] = set()
    entries = seen.entries["/volume/empty"]
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
    expected = {"grüße.txt": "grüße", "日本語.txt": "日本語", "emoji-🙂.txt": "🙂"}
    seen = layered.view(
        'for f in /volume/unicode/*; do printf "%s\\n" "${f##*/}"; done',
        files=[f"/volume/unicode/{name}" for name in expected],
    )
    listed = seen.results[0].stdout.split("\n")
    assert set(filter(None, listed)) == set(expected), f"unicode/ holds {sorted(filter(None, listed))}"
    for name, content in expected.items():
        found = seen.files[f"/volume/unicode/{name}"]
        assert found == content, f"unicode/{name}: expected {content!r}, saw {found!r}"


@pytest.mark.slow
@pytest.mark.behaviour("large-file")
def test_large_file_arrives_intact(launch, artifacts):
    pod = launch("basic", reference=artifacts["large"].reference)
    sized, result = pod.sh_each([stat_script("%s", "/volume/large.bin"), "sha256sum /volume/large.bin"], timeout=120)
    size = stat_output(sized, "/volume/large.bin")
    assert size == str(LARGE_FILE_SIZE), f"large.bin: expected {LARGE_FILE_SIZE} bytes, saw {size}"
    assert result.returncode == 0, result.output
    digest = result.stdout.split()[0]
    assert digest == LARGE_FILE_SHA256, f"large.bin: expected sha256 {LARGE_FILE_SHA256}, saw {digest}"
