"""Version parsing and ranges: the one vocabulary providers, the expectation table and reports share."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import total_ordering

_VERSION = re.compile(r"v?(\d+)\.(\d+)(?:\.(\d+))?")
# A release as the Go module proxy names it: v1.36.3, v1.38.0-beta.0.
_RELEASE = re.compile(r"v?(\d+)\.(\d+)\.(\d+)(-[0-9A-Za-z.]+)?")


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

    @classmethod
    def parse_or_none(cls, text: str) -> Version | None:
        """`Version.parse`, or None for a string without a version (a vendor's `acme://devel`)."""
        try:
            return cls.parse(text)
        except ValueError:
            return None

    @property
    def minor_release(self) -> Version:
        """1.36.3 → 1.36.0: what minor-keyed rules compare against."""
        return Version(self.major, self.minor)

    def __lt__(self, other: Version) -> bool:
        return (self.major, self.minor, self.patch) < (other.major, other.minor, other.patch)

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


def release_in(text: str | None) -> str | None:
    """The first release tag in a text such as an image reference (`ivc/kind-node:v1.35.4-crio1.36.3`)."""
    match = re.search(r":(v\d+\.\d+\.\d+)", text or "")
    return match[1] if match else None


def release(text: str, what: str = "version") -> str:
    """A release exactly as tags and module versions spell it: `1.36.3` → `v1.36.3`. ValueError otherwise."""
    value = text.strip()
    if not _RELEASE.fullmatch(value):
        raise ValueError(f"{what} {text!r} is not a release like v1.36.3")
    return value if value.startswith("v") else f"v{value}"


@dataclass(frozen=True)
class VersionRange:
    """[minimum, below), or [minimum, maximum] with an inclusive upper bound (the newest version a claim
    was observed on). Any bound may be None (unbounded)."""

    minimum: Version | None = None
    below: Version | None = None
    maximum: Version | None = None

    def __contains__(self, version: Version) -> bool:
        return (
            (self.minimum is None or version >= self.minimum)
            and (self.below is None or version < self.below)
            and (self.maximum is None or version <= self.maximum)
        )

    def __str__(self) -> str:
        parts = [f">={self.minimum}"] if self.minimum else []
        if self.below:
            parts.append(f"<{self.below}")
        if self.maximum:
            parts.append(f"<={self.maximum}")
        return ",".join(parts) or "any"


ANY = VersionRange()


def since(version: str) -> VersionRange:
    return VersionRange(minimum=Version.parse(version))


def before(version: str) -> VersionRange:
    return VersionRange(below=Version.parse(version))


def between(minimum: str, below: str) -> VersionRange:
    return VersionRange(minimum=Version.parse(minimum), below=Version.parse(below))


def through(minimum: str, maximum: str) -> VersionRange:
    """From `minimum` up to and including `maximum`: a claim bounded by the newest version it was seen on."""
    return VersionRange(minimum=Version.parse(minimum), maximum=Version.parse(maximum))
