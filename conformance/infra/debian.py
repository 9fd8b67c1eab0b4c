"""Debian packages: installed from the host's own apt, or downloaded and unpacked without installing.

The archive is never named here: `mirror()` reads it from the host's apt sources (deb822 `.sources`
or one-line `.list` files), as users behind a corporate mirror expect. Packages of newer suites
(sid's etcd-server, which cannot be installed on bookworm because it pulls systemd) are only ever
seen by a *private* apt state under the cache dir and unpacked with `dpkg -x`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from conformance.infra.errors import ClusterError
from conformance.infra.files import staged_directory, staged_file
from conformance.infra.process import last_line, run
from conformance.infra.progress import progress

APT_SOURCES = Path("/etc/apt")
APT_LISTS = Path("/var/lib/apt/lists")
APT_LISTS_MAX_AGE = 24 * 3600
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"


def codename() -> str:
    """The host's Debian codename (bookworm) from /etc/os-release."""
    try:
        text = Path("/etc/os-release").read_text()
    except OSError:
        text = ""
    match = re.search(r"^VERSION_CODENAME=\"?(\w+)", text, re.MULTILINE)
    return match[1] if match else "bookworm"


def _sources(root: Path = APT_SOURCES) -> list[tuple[str, list[str]]]:
    """(URI, suites) of every enabled `deb` source."""
    entries: list[tuple[str, list[str]]] = []
    files = [root / "sources.list", *sorted((root / "sources.list.d").glob("*.list"))]
    for path in files:
        try:
            lines = path.read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            match = re.match(r"^\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)", line)
            if match:
                entries.append((match[1], [match[2]]))
    for path in sorted((root / "sources.list.d").glob("*.sources")):
        try:
            text = path.read_text()
        except OSError:
            continue
        for stanza in re.split(r"\n\s*\n", text):
            fields = dict(re.findall(r"^(\w[\w-]*):\s*(.*)$", stanza, re.MULTILINE))
            if "deb" in fields.get("Types", "").split() and fields.get("Enabled", "yes").lower() != "no":
                entries += [(uri, fields.get("Suites", "").split()) for uri in fields.get("URIs", "").split()]
    return entries


def mirror(root: Path = APT_SOURCES) -> str:
    """The archive URI the host installs its own suite from, e.g. http://deb.debian.org/debian."""
    suite = codename()
    for uri, suites in _sources(root):
        if suite in suites:
            return uri.rstrip("/")
    raise ClusterError(f"no apt source for Debian {suite} in {root}/sources.list(.d): add the archive you use")


def _installed(package: str) -> bool:
    proc = run(["dpkg-query", "-W", "-f=${Status}", package], what="dpkg-query", check=False)
    return proc.returncode == 0 and proc.stdout.strip() == "install ok installed"


def missing_packages(packages: Iterable[str]) -> list[str]:
    return [p for p in packages if not _installed(p)]


def _lists_fresh() -> bool:
    stamps = list(APT_LISTS.glob("*_InRelease")) + list(APT_LISTS.glob("*_Release"))
    return bool(stamps) and time.time() - max(p.stat().st_mtime for p in stamps) < APT_LISTS_MAX_AGE


def _apt(args: Sequence[str], *, what: str, cwd: Path | None = None) -> None:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    run(["apt-get", *args], what=what, cwd=cwd, env=env, timeout=30 * 60, heartbeat=60)


def ensure_packages(packages: Sequence[str]) -> None:
    """Install whatever of `packages` is missing; `apt-get update` only when needed and stale."""
    missing = missing_packages(packages)
    if not missing:
        return
    progress(f"installing Debian packages: {' '.join(missing)}")
    install = ["install", "-y", "--no-install-recommends", *missing]
    updated = False
    if not _lists_fresh():
        _apt(["update"], what="apt-get update")
        updated = True
    try:
        _apt(install, what=f"installing {' '.join(missing)}")
    except ClusterError:
        if updated:
            raise
        # Fresh-looking lists can still miss a package (e.g. after a point release): update once and retry.
        _apt(["update"], what="apt-get update")
        _apt(install, what=f"installing {' '.join(missing)}")
    still = missing_packages(missing)
    if still:
        raise ClusterError(f"Debian package {still[0]} is still not installed after apt-get install")


def private_apt_options(private: Path) -> list[str]:
    """apt-get options that confine apt to a private state: the system apt never sees that suite."""
    return [
        "-o", f"Dir::Etc::SourceList={private / 'sources.list'}",
        "-o", "Dir::Etc::SourceParts=/dev/null",
        "-o", "Dir::Etc::PreferencesParts=/dev/null",
        "-o", f"Dir::State::Lists={private / 'lists'}",
        "-o", f"Dir::Cache={private}",
        "-o", f"Dir::Cache::Archives={private / 'archives'}",
        "-o", "Debug::NoLocking=1",
    ]  # fmt: skip


def unpacked(package: str, suite: str, cache: Path) -> Path:
    """`package` from `suite` unpacked (`dpkg -x`) into `<cache>/<package>-<suite>/`, once per cache."""
    dest = cache / f"{package}-{suite}"
    if (dest / ".complete").exists():
        return dest
    ensure_packages(("debian-archive-keyring",))
    progress(f"{package}: downloading it from Debian {suite} into {dest}")
    private = cache / f".apt-{suite}"
    shutil.rmtree(private, ignore_errors=True)
    (private / "lists" / "partial").mkdir(parents=True)
    (private / "archives" / "partial").mkdir(parents=True)
    (private / "sources.list").write_text(f"deb [signed-by={KEYRING}] {mirror()} {suite} main\n")
    options = private_apt_options(private)
    _apt([*options, "update"], what=f"apt-get update (private {suite} state)")
    download = private / "download"
    download.mkdir()
    _apt([*options, "download", package], what=f"downloading {package} from Debian {suite}", cwd=download)
    debs = sorted(download.glob(f"{package}_*.deb"))
    if not debs:
        raise ClusterError(f"downloading {package} from Debian {suite} produced no .deb in {download}")
    version = debs[-1].name.split("_")[1]
    with staged_directory(dest) as staged:
        run(["dpkg", "-x", str(debs[-1]), str(staged)], what=f"dpkg -x {debs[-1].name}")
        complete = {"package": package, "suite": suite, "version": version}
        (staged / ".complete").write_text(json.dumps(complete) + "\n")
    shutil.rmtree(private, ignore_errors=True)
    progress(f"{package}: {version} from {suite} unpacked")
    return dest


def unpacked_version(directory: Path) -> str:
    try:
        return str(json.loads((directory / ".complete").read_text())["version"])
    except (OSError, ValueError, KeyError):
        return "unknown"


def runs_here(binary: Path) -> None:
    """A newer suite's binary must run on this glibc: say so in one line when it does not."""
    proc = run([str(binary), "--version"], what=f"{binary.name} --version", check=False)
    if proc.returncode != 0:
        raise ClusterError(f"{binary} does not run on this host: {last_line(proc.stderr or proc.stdout)}")


SOURCE_DATE_EPOCH = "1767225600"  # fixed: a root built twice from the same packages is the same tar


def root_tar(name: str, packages: Sequence[str], cache: Path, *, variant: str = "minbase") -> Path:
    """A root file system of the host's own suite, from the host's mirror, as a tar; cached by its inputs.

    `mmdebstrap` (root mode) builds it; the kind node image and the registry container image start here.
    """
    suite, archive = codename(), mirror()
    key = hashlib.sha256(json.dumps([suite, archive, variant, sorted(packages)]).encode()).hexdigest()[:16]
    target = cache / "debian-roots" / f"{name}-{suite}-{key}.tar"
    if target.exists():
        return target
    ensure_packages(("mmdebstrap",))
    progress(f"{name}: mmdebstrap {suite} ({variant}, {len(packages)} packages) from {archive}")
    with staged_file(target) as partial:
        run(
            [
                "mmdebstrap",
                f"--variant={variant}",
                f"--include={','.join(packages)}",
                "--components=main",
                "--format=tar",
                suite,
                str(partial),
                archive,
            ],
            what=f"mmdebstrap {name}",
            timeout=30 * 60,
            heartbeat=60,
            env={**os.environ, "SOURCE_DATE_EPOCH": SOURCE_DATE_EPOCH},
        )
    return target
