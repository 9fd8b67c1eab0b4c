"""The suite's named test artifacts, as data. Built deterministically and pushed once per run.

`seed` is the tree of the upstream `quay.io/crio/artifact:v1/v2` used by every upstream suite
(`dir/file` = 1, `file` = 2), rebuilt here so no outside registry is ever needed.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass

from conformance.oci import ArtifactSpec, Dir, File, ImageSpec, RegistryClient, build

SHARED_REPOSITORY_PREFIX = "ivc/artifacts"

EXEC_SCRIPT = b"#!/bin/sh\necho executed-from-volume\n"

CATALOG: dict[str, ImageSpec | ArtifactSpec] = {
    # Two layers like the upstream artifact: `dir/` then `file`.
    "seed": ImageSpec(layers=((Dir("dir"), File("dir/file", b"1")), (File("file", b"2"),))),
    # The same tree with other bytes: what a moved tag points at.
    "seed-moved": ImageSpec(layers=((Dir("dir"), File("dir/file", b"moved-1")), (File("file", b"moved-2"),))),
    # An executable script, to observe (never require) noexec.
    "exec": ImageSpec(layers=((File("bin/hello.sh", EXEC_SCRIPT, mode=0o755), File("data.txt", b"data")),)),
}


@dataclass(frozen=True)
class PushedArtifact:
    name: str
    repository: str  # without host
    tag: str
    digest: str
    pull_host: str

    @property
    def reference(self) -> str:
        """By tag, as Pods normally reference it."""
        return f"{self.pull_host}/{self.repository}:{self.tag}"

    @property
    def by_digest(self) -> str:
        return f"{self.pull_host}/{self.repository}@{self.digest}"

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def content_tag(digest: str) -> str:
    """A tag derived from content, so a changed description never reuses a node's cached copy."""
    return "c-" + digest.split(":", 1)[1][:16]


def push_named(client: RegistryClient, name: str, spec: ImageSpec | ArtifactSpec, repository: str,
               tag: str | None = None) -> PushedArtifact:
    built = build(spec)
    tag = tag or content_tag(built.manifest_digest)
    digest = client.push(built, repository, tag)
    return PushedArtifact(name=name, repository=repository, tag=tag, digest=digest, pull_host=client.endpoint.pull)


def push_catalog(client: RegistryClient, catalog: dict[str, ImageSpec | ArtifactSpec] = CATALOG
                 ) -> dict[str, PushedArtifact]:
    return {
        name: push_named(client, name, spec, f"{SHARED_REPOSITORY_PREFIX}/{name}") for name, spec in catalog.items()
    }


def private_repository(run_id: str, nodeid: str) -> str:
    """A repository no other test (or parallel worker) touches: for tests that move tags or need
    an image the node has never pulled."""
    digest = hashlib.sha256(nodeid.encode()).hexdigest()[:12]
    return f"ivc/run-{run_id}/t-{digest}"
