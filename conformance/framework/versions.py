"""Version parsing and ranges: the vocabulary the expectation table is written in."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import total_ordering

_VERSION = re.compile(r"v?(\d+)\.(\d+)(?:\.(\d+))?")


@total_ordering
@dataclass(frozen=True)
class Version:
    major: int
    minor: int
    patch: int = 0

    @classmethod
    def parse(cls, text: str) -> Version:
        """Parse `v1.36.3`, `1.36`, `cri-o://1.36.3`, `v1.36.3-rc.1+abc` (pre-release/build ignored)."""
        match = _VERSION.search(text.split("://", 1)[-1])
        if not match:
            raise ValueError(f"not a version: {text!r}")
        return cls(int(match[1]), int(match[2]), int(match[3] or 0))

    def __lt__(self, other: Version) -> bool:
        return (self.major, self.minor, self.patch) < (other.major, other.minor, other.patch)

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


@dataclass(frozen=True)
class VersionRange:
    """Half-open [minimum, below). Either bound may be None (unbounded)."""

    minimum: Version | None = None
    below: Version | None = None

    def __contains__(self, version: Version) -> bool:
        return (self.minimum is None or version >= self.minimum) and (self.below is None or version < self.below)

    def __str__(self) -> str:
        if self.minimum and self.below:
            return f">={self.minimum},<{self.below}"
        if self.minimum:
            return f">={self.minimum}"
        if self.below:
            return f"<{self.below}"
        return "any"


ANY = VersionRange()


def since(version: str) -> VersionRange:
    return VersionRange(minimum=Version.parse(version))


def before(version: str) -> VersionRange:
    return VersionRange(below=Version.parse(version))


def between(minimum: str, below: str) -> VersionRange:
    return VersionRange(minimum=Version.parse(minimum), below=Version.parse(below))
