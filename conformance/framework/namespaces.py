"""Names and labels of the namespaces a run creates: one place, so the end-of-run sweep finds them all."""

from __future__ import annotations

import hashlib
import re

RUN_LABEL = "ivc.conformance/run"  # value: the run id; the sweep deletes by it


def test_namespace(run_id: str, nodeid: str) -> str:
    """A test's own namespace: readable (the test's name) and unique (a digest of its node id)."""
    test = re.sub(r"[^a-z0-9]+", "-", nodeid.rsplit("::", 1)[-1].lower()).strip("-")[:30].strip("-")
    digest = hashlib.sha256(nodeid.encode()).hexdigest()[:6]
    return f"ivc-{run_id}-{test}-{digest}"


def shared_namespace(run_id: str) -> str:
    """The run's shared Pods (shared_pods.py), the runtime probe's among them."""
    return f"ivc-{run_id}-shared-pods"
