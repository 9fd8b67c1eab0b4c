"""Mounts below a directory of ours: found in /proc/self/mountinfo, unmounted deepest first."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from conformance.infra.process import run


def unescape_mountinfo(path: str) -> str:
    """Mount points in /proc/self/mountinfo escape spaces and the like as octal (\\040)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), path)


def mounts_under(prefixes: Iterable[str]) -> list[str]:
    prefixes = [p.rstrip("/") for p in prefixes]
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        mountpoint = unescape_mountinfo(line.split()[4])
        if any(mountpoint == p or mountpoint.startswith(p + "/") for p in prefixes):
            found.append(mountpoint)
    return found


def unmount_all(prefixes: Iterable[str]) -> list[str]:
    """Unmount everything below `prefixes`, deepest first; returns what could not be unmounted."""
    prefixes = list(prefixes)
    for _ in range(5):  # mounts can be stacked on one point; a few passes settle it
        mounts = sorted(set(mounts_under(prefixes)), key=lambda m: (m.count("/"), m), reverse=True)
        if not mounts:
            return []
        for mountpoint in mounts:
            if run(["umount", mountpoint], what="umount", check=False).returncode != 0:
                run(["umount", "-l", mountpoint], what="umount -l", check=False)
    return mounts_under(prefixes)
