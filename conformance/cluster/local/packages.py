"""Debian packages the local cluster needs, and etcd extracted from Debian sid.

Everything comes from bookworm through the system apt, except etcd: bookworm's 3.4 is EOL and
lacks the watch-progress fix, and sid's `etcd-server` cannot be installed on bookworm (it pulls
systemd/sysusers). sid is therefore only ever seen by a *private* apt state under the cache dir,
and its package is unpacked with `dpkg -x`, never installed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from conformance.cluster.errors import ClusterError
from conformance.cluster.progress import progress

# What the running cluster needs on the host.
RUNTIME_PACKAGES = (
    "conmon",
    "runc",  # the OCI runtime; bookworm's crun 1.8.1 rejects the runtime-spec CRI-O 1.36 writes
    "containernetworking-plugins",
    "docker-registry",
    "iptables",
    "apache2-utils",  # htpasswd -B for the auth registry
    "jq",  # the runc wrapper that drops hugetlb limits (config.render_runc_wrapper)
    "golang-github-containers-common",  # /etc/containers/policy.json and friends
    "libseccomp2",
    "openssl",  # the auth registry's CA and serving certificate
    "iproute2",  # ss and ip, for the port check and network teardown
    "util-linux",  # mount/umount
)
# What build.py needs on top of Go: cgo and libseccomp headers for CRI-O, a static libc for pinns.
BUILD_PACKAGES = ("gcc", "libc6-dev", "libseccomp-dev", "pkg-config")

CNI_PLUGIN_DIR = Path("/usr/lib/cni")  # where Debian's containernetworking-plugins installs
APT_LISTS = Path("/var/lib/apt/lists")
APT_LISTS_MAX_AGE = 24 * 3600
SID_SOURCE = "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian sid main\n"
ETCD_PACKAGE = "etcd-server"


def _installed(package: str) -> bool:
    proc = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True, check=False)
    return proc.returncode == 0 and proc.stdout.strip() == "install ok installed"


def missing_packages(packages: Iterable[str]) -> list[str]:
    return [p for p in packages if not _installed(p)]


def _lists_fresh() -> bool:
    stamps = list(APT_LISTS.glob("*_InRelease")) + list(APT_LISTS.glob("*_Release"))
    return bool(stamps) and time.time() - max(p.stat().st_mtime for p in stamps) < APT_LISTS_MAX_AGE


def _apt(args: Sequence[str], *, what: str, cwd: Path | None = None) -> None:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    proc = subprocess.run(["apt-get", *args], capture_output=True, text=True, env=env, cwd=cwd, check=False)
    if proc.returncode != 0:
        lines = [line for line in (proc.stderr + proc.stdout).strip().splitlines() if line.strip()]
        last = lines[-1] if lines else f"apt-get exited {proc.returncode}"
        raise ClusterError(f"{what}: {last}")


def ensure_packages(packages: Sequence[str]) -> None:
    """Install whatever of `packages` is missing; `apt-get update` only when needed and stale."""
    missing = missing_packages(packages)
    if not missing:
        return
    progress(f"installing Debian packages: {' '.join(missing)}")
    updated = False
    if not _lists_fresh():
        _apt(["update"], what="apt-get update failed")
        updated = True
    try:
        _apt(["install", "-y", "--no-install-recommends", *missing], what=f"installing {' '.join(missing)} failed")
    except ClusterError:
        if updated:
            raise
        # Fresh-looking lists can still miss a package (e.g. after a point release): update once and retry.
        _apt(["update"], what="apt-get update failed")
        _apt(["install", "-y", "--no-install-recommends", *missing], what=f"installing {' '.join(missing)} failed")
    still = missing_packages(missing)
    if still:
        raise ClusterError(f"Debian package {still[0]} is still not installed after apt-get install")
    if "docker-registry" in missing:
        stop_packaged_registry()


def stop_packaged_registry() -> None:
    """The package's init script may start a registry on :5000 (all interfaces); ours must own that port."""
    pidfile = Path("/var/run/docker-registry.pid")
    if pidfile.exists() and Path("/etc/init.d/docker-registry").exists():
        subprocess.run(["/etc/init.d/docker-registry", "stop"], capture_output=True, check=False)
    subprocess.run(["update-rc.d", "docker-registry", "disable"], capture_output=True, check=False)


def ensure_runtime_packages() -> None:
    ensure_packages(RUNTIME_PACKAGES)


def ensure_build_packages() -> None:
    ensure_packages(BUILD_PACKAGES)


def sid_apt_options(private: Path) -> list[str]:
    """apt-get options that confine apt to a private state: the system apt never sees sid."""
    return [
        "-o", f"Dir::Etc::SourceList={private / 'sources.list'}",
        "-o", "Dir::Etc::SourceParts=/dev/null",
        "-o", "Dir::Etc::PreferencesParts=/dev/null",
        "-o", f"Dir::State::Lists={private / 'lists'}",
        "-o", f"Dir::Cache={private}",
        "-o", f"Dir::Cache::Archives={private / 'archives'}",
        "-o", "Debug::NoLocking=1",
    ]  # fmt: skip


def etcd_dir(cache: Path) -> Path:
    return cache / "etcd-server"


def ensure_etcd(cache: Path) -> Path:
    """Return the etcd binary, downloading and unpacking sid's etcd-server once per cache."""
    dest = etcd_dir(cache)
    binary = dest / "usr" / "bin" / "etcd"
    if (dest / ".complete").exists() and binary.exists():
        return binary
    ensure_packages(("debian-archive-keyring",))
    progress(f"etcd: downloading Debian sid {ETCD_PACKAGE} into {dest}")
    private = cache / ".apt-sid"
    shutil.rmtree(private, ignore_errors=True)
    (private / "lists" / "partial").mkdir(parents=True)
    (private / "archives" / "partial").mkdir(parents=True)
    (private / "sources.list").write_text(SID_SOURCE)
    options = sid_apt_options(private)
    _apt([*options, "update"], what="apt-get update (private sid state) failed")
    download = private / "download"
    download.mkdir()
    _apt(
        [*options, "download", ETCD_PACKAGE],
        what=f"downloading Debian package {ETCD_PACKAGE} from sid failed",
        cwd=download,
    )
    debs = sorted(download.glob(f"{ETCD_PACKAGE}_*.deb"))
    if not debs:
        raise ClusterError(f"downloading Debian package {ETCD_PACKAGE} from sid produced no .deb in {download}")
    staged = dest.with_name(dest.name + ".partial")
    shutil.rmtree(staged, ignore_errors=True)
    staged.mkdir(parents=True)
    proc = subprocess.run(["dpkg", "-x", str(debs[-1]), str(staged)], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise ClusterError(f"dpkg -x {debs[-1].name} failed: {proc.stderr.strip().splitlines()[-1:]}")
    version = debs[-1].name.split("_")[1]
    check = subprocess.run([str(staged / "usr/bin/etcd"), "--version"], capture_output=True, text=True, check=False)
    if check.returncode != 0:
        raise ClusterError(f"sid etcd {version} does not run on this host: {(check.stderr or check.stdout).strip()}")
    (staged / ".complete").write_text(json.dumps({"component": ETCD_PACKAGE, "version": version}) + "\n")
    shutil.rmtree(dest, ignore_errors=True)
    staged.rename(dest)
    shutil.rmtree(private, ignore_errors=True)
    progress(f"etcd: {ETCD_PACKAGE} {version} unpacked")
    return dest / "usr" / "bin" / "etcd"


def etcd_version(cache: Path) -> str:
    try:
        return json.loads((etcd_dir(cache) / ".complete").read_text())["version"]
    except (OSError, ValueError, KeyError):
        return "unknown"
