"""The CRI-O node image: kind/node-crio.Dockerfile on top of a published kindest/node image."""

from __future__ import annotations

import time
from pathlib import Path

from conformance.cluster.errors import ClusterError
from conformance.cluster.kind.config import crio_stream
from conformance.cluster.kind.marks import LABEL_MANAGED_BY, MANAGED_BY
from conformance.cluster.kind.tools import Tools
from conformance.cluster.progress import progress

KIND_DIR = Path(__file__).resolve().parents[3] / "kind"
DOCKERFILE = KIND_DIR / "node-crio.Dockerfile"


def present(tools: Tools, image: str) -> bool:
    return (
        tools.docker_run(
            "image", "inspect", "--format", "{{.Id}}", image, what="inspect node image", check=False
        ).returncode
        == 0
    )


def ensure(tools: Tools, image: str, *, k8s_version: str, crio_version: str, build: bool) -> None:
    if present(tools, image):
        progress(f"kind: node image {image} present")
        return
    if not build:
        progress(f"kind: node image {image} not present locally; kind will pull it")
        return
    if not DOCKERFILE.exists():
        raise ClusterError(f"{DOCKERFILE} is missing: run from a checkout of the suite, or pass --node-image")
    stream = crio_stream(crio_version)
    progress(f"kind: building {image} from kindest/node:{k8s_version} + CRI-O {stream} (a few minutes, once)")
    started = time.monotonic()
    tools.docker_run(
        "build",
        "--build-arg",
        f"KIND_NODE_IMAGE=kindest/node:{k8s_version}",
        "--build-arg",
        f"CRIO_VERSION={stream}",
        "--label",
        f"{LABEL_MANAGED_BY}={MANAGED_BY}",
        "-t",
        image,
        "-f",
        str(DOCKERFILE),
        str(KIND_DIR),
        what=f"build node image {image}",
        timeout=45 * 60,
    )
    if not present(tools, image):
        raise ClusterError(
            f"docker build did not load {image} into the image store: "
            "switch to the default builder (`docker buildx use default`) and retry"
        )
    progress(f"kind: node image built in {time.monotonic() - started:.0f}s")
