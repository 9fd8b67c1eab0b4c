"""Every fixture the tests use, in one place. Each is a knob: override it in a conftest.py.

Scopes: session-scoped fixtures are per process (each xdist worker has its own API client);
the cluster itself is owned by the controller (see plugin.py), never by a fixture.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conformance.framework import artifacts as artifact_catalog
from conformance.framework.artifacts import PushedArtifact
from conformance.framework.capabilities import Capabilities
from conformance.framework.expectations import Expectation
from conformance.framework.kube import Kube
from conformance.framework.manifests import MANIFESTS_DIR, render
from conformance.framework.plugin import EXPECTATION_KEY, SESSION_KEY
from conformance.framework.pods import PodUnderTest
from conformance.framework.session import RUN_LABEL, SuiteSession
from conformance.oci import ArtifactSpec, ImageSpec, RegistryClient

NAMESPACES_KEY = pytest.StashKey[list[str]]()


# -- knobs ------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def pod_start_timeout() -> float:
    """Seconds a Pod may take to become Running (includes pulling the image volume)."""
    return 120.0


@pytest.fixture(scope="session")
def pull_failure_timeout() -> float:
    """Seconds to wait for an image pull failure to surface as a waiting reason."""
    return 120.0


@pytest.fixture(scope="session")
def manifests_dir() -> Path:
    """Where Pod templates are read from."""
    return MANIFESTS_DIR


# -- the run ----------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def ivc_session(pytestconfig: pytest.Config) -> SuiteSession:
    suite = pytestconfig.stash.get(SESSION_KEY, None)
    if suite is None:
        pytest.skip("no cluster: run the conformance tests with --cluster=kind|existing|local")
    return suite


@pytest.fixture(scope="session")
def kube(ivc_session: SuiteSession) -> Kube:
    return Kube(ivc_session.handle.kubeconfig, ivc_session.handle.context)


@pytest.fixture(scope="session")
def capabilities(ivc_session: SuiteSession) -> Capabilities:
    return ivc_session.capabilities


@pytest.fixture(scope="session")
def artifacts(ivc_session: SuiteSession) -> dict[str, PushedArtifact]:
    """The shared, immutable artifacts pushed once per run (see framework/artifacts.py)."""
    return ivc_session.artifacts


@pytest.fixture(scope="session")
def registry(ivc_session: SuiteSession) -> RegistryClient:
    return RegistryClient(ivc_session.handle.registry)


@pytest.fixture
def expectation(request: pytest.FixtureRequest) -> Expectation:
    """What the table expects of this test's behaviour on this cluster."""
    found = request.node.stash.get(EXPECTATION_KEY, None)
    if found is None:
        raise pytest.UsageError(f"{request.node.nodeid} uses `expectation` but has no @pytest.mark.behaviour")
    return found


@pytest.fixture
def observe(request: pytest.FixtureRequest) -> Callable[[str, Any], None]:
    """Record an informational observation; it lands in the report, never in the verdict."""

    def record(key: str, value: Any) -> None:
        request.node.user_properties.append((f"ivc.observed.{key}", str(value)))

    return record


def _namespace_name(run_id: str, nodeid: str) -> str:
    test = re.sub(r"[^a-z0-9]+", "-", nodeid.rsplit("::", 1)[-1].lower()).strip("-")[:30].strip("-")
    digest = hashlib.sha256(nodeid.encode()).hexdigest()[:6]
    return f"ivc-{run_id}-{test}-{digest}"


@pytest.fixture
def namespace(request: pytest.FixtureRequest, kube: Kube, ivc_session: SuiteSession) -> Iterator[str]:
    """A fresh namespace per test, labelled with the run id; deleted without waiting."""
    name = _namespace_name(ivc_session.run_id, request.node.nodeid)
    kube.create_namespace(name, labels={RUN_LABEL: ivc_session.run_id},
                          annotations={"ivc.conformance/test": request.node.nodeid})
    request.node.stash.setdefault(NAMESPACES_KEY, []).append(name)
    try:
        kube.wait_for_service_account(name)
        yield name
    finally:
        kube.delete_namespace(name)


LaunchPod = Callable[..., PodUnderTest]


@pytest.fixture
def launch(kube: Kube, namespace: str, ivc_session: SuiteSession, manifests_dir: Path,
           pod_start_timeout: float) -> LaunchPod:
    """`launch("basic", reference=…)` renders a manifest, creates the Pod and waits until Running.

    Pass `wait=False` to get the Pod right after creation (failure tests wait for reasons).
    """
    counter = iter(range(1, 1000))

    def create(template: str = "basic", *, wait: bool = True, name: str | None = None,
               **params: Any) -> PodUnderTest:
        pod_name = name or f"{template}-{next(counter)}"
        body = render(template, manifests_dir, name=pod_name, shell_image=ivc_session.shell_image, **params)
        created = kube.create_pod(namespace, body)
        pod = PodUnderTest(kube, namespace, pod_name, created)
        return pod.wait_running(pod_start_timeout) if wait else pod

    return create


@pytest.fixture
def render_pod(ivc_session: SuiteSession, manifests_dir: Path) -> Callable[..., dict[str, Any]]:
    """Render a manifest without creating it (API validation and dry-run tests)."""

    def make(template: str = "basic", *, name: str = "probe", **params: Any) -> dict[str, Any]:
        return render(template, manifests_dir, name=name, shell_image=ivc_session.shell_image, **params)

    return make


PushToPrivate = Callable[..., PushedArtifact]


@pytest.fixture
def private_push(request: pytest.FixtureRequest, registry: RegistryClient,
                 ivc_session: SuiteSession) -> Iterator[PushToPrivate]:
    """Push to a repository only this test uses: for moving tags and never-pulled images.

    `private_push("seed", tag="v1")` pushes the catalog entry (or pass an ImageSpec/ArtifactSpec).
    Tags pushed here are deleted from the registry afterwards.
    """
    repository = artifact_catalog.private_repository(ivc_session.run_id, request.node.nodeid)
    pushed: list[str] = []

    def push(what: str | ImageSpec | ArtifactSpec, tag: str = "v1") -> PushedArtifact:
        spec = artifact_catalog.CATALOG[what] if isinstance(what, str) else what
        name = what if isinstance(what, str) else "custom"
        pushed.append(tag)
        return artifact_catalog.push_named(registry, name, spec, repository, tag)

    yield push
    for tag in dict.fromkeys(pushed):
        # Best effort: the local registry is wiped on `down` anyway.
        with contextlib.suppress(Exception):
            registry.delete_tag(repository, tag)


@pytest.fixture(scope="module")
def _seed_pod_for_module(request: pytest.FixtureRequest, kube: Kube, ivc_session: SuiteSession,
                         manifests_dir: Path, pod_start_timeout: float) -> Iterator[PodUnderTest]:
    name = _namespace_name(ivc_session.run_id, request.node.nodeid + "::seed-pod")
    kube.create_namespace(name, labels={RUN_LABEL: ivc_session.run_id},
                          annotations={"ivc.conformance/test": request.node.nodeid})
    try:
        kube.wait_for_service_account(name)
        body = render("basic", manifests_dir, name="seed", shell_image=ivc_session.shell_image,
                      reference=ivc_session.artifacts["seed"].reference)
        kube.create_pod(name, body)
        yield PodUnderTest(kube, name, "seed").wait_running(pod_start_timeout)
    finally:
        kube.delete_namespace(name)


@pytest.fixture
def seed_pod(request: pytest.FixtureRequest, _seed_pod_for_module: PodUnderTest) -> PodUnderTest:
    """One Running Pod with the seed artifact at /volume, shared by a module's read-only probes
    (they cannot change it, and a Pod per probe would triple the run time)."""
    request.node.stash.setdefault(NAMESPACES_KEY, []).append(_seed_pod_for_module.namespace)
    return _seed_pod_for_module


@pytest.fixture
def absent_reference(request: pytest.FixtureRequest, ivc_session: SuiteSession) -> str:
    """A fully qualified reference in the run's registry that nothing ever pushes."""
    repository = artifact_catalog.private_repository(ivc_session.run_id, request.node.nodeid)
    return f"{ivc_session.handle.registry.pull}/{repository}/absent:v1"
