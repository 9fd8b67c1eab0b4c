"""Every fixture the tests use, in one place. Each is a knob: override it in a conftest.py.

Scopes: session-scoped fixtures are per process (each xdist worker has its own API client);
the cluster itself is owned by the controller (see plugin.py), never by a fixture.
"""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import Callable, Iterator
from dataclasses import replace
from importlib.resources.abc import Traversable
from typing import Any

import pytest

from conformance.framework import artifacts as artifact_catalog
from conformance.framework.artifacts import PushedArtifact
from conformance.framework.capabilities import Capabilities, NodeGroup
from conformance.framework.counters import NodeCounters, quiet_node
from conformance.framework.diagnosis import EnvironmentProblem, admitted
from conformance.framework.expectations import Expectation, restricted_namespaces_admit_image_volumes
from conformance.framework.keys import (
    EXCLUSIVE_FIXTURES,
    EXPECTATION_KEY,
    NAMESPACES_KEY,
    NODE_FIXTURES,
    NODES_EXCLUSIVE_FIXTURE,
    SESSION_KEY,
    UNDISRUPTIVE_KEY,
)
from conformance.framework.manifests import MANIFESTS_DIR, PodSecurity, pinned, render, secured
from conformance.framework.namespaces import RUN_LABEL, pod_security_labels, test_namespace
from conformance.framework.node import Crictl, Node
from conformance.framework.pods import PodUnderTest
from conformance.framework.report import POD_PROPERTY
from conformance.framework.run_locks import RunLock, RunProgress
from conformance.framework.session import SuiteSession
from conformance.framework.shared_pods import SharedPodFailed, SharedPods, shape
from conformance.infra.kube import Kube
from conformance.infra.wait import WaitTimeout
from conformance.oci import ArtifactSpec, ImageSpec, RegistryClient, RegistryError
from conformance.oci.endpoint import RegistryEndpoint


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
def pod_delete_timeout() -> float:
    """Seconds a deleted Pod may take to be gone (the kubelet stops it and tears down its volumes)."""
    return 60.0


@pytest.fixture(scope="session")
def manifests_dir() -> Traversable:
    """Where Pod templates are read from (override with a Path to try your own)."""
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


@pytest.fixture(autouse=True)
def node_group(request: pytest.FixtureRequest) -> NodeGroup | None:
    """The node group this test's Pods run on: its parameter when the nodes differ (the plugin runs every
    node-deciding test once per group); for a test the apiserver decides, the first group where image
    volumes work (its Pods must start somewhere); the cluster's only group otherwise. None without one."""
    suite = request.config.stash.get(SESSION_KEY, None)
    if suite is None or not suite.capabilities.groups:
        return None
    caps = suite.capabilities
    if (group_id := getattr(request, "param", None)) is not None:
        return caps.group(group_id)
    working = [group for group in caps.groups if caps.group_unavailable_reason(group.id) is None]
    return (working or list(caps.groups))[0]


@pytest.fixture
def pod_security(request: pytest.FixtureRequest, capabilities: Capabilities) -> PodSecurity:
    """The Pod Security level the test's namespace enforces and its Pods are shaped for: the test's
    `pod_security` marker, else `restricted` where this apiserver's restricted admits image volumes
    (the table's `pod-security-restricted` row), else `baseline`."""
    marker = request.node.get_closest_marker("pod_security")
    if marker is not None:
        return PodSecurity(marker.args[0])
    return PodSecurity.RESTRICTED if restricted_namespaces_admit_image_volumes(capabilities) else PodSecurity.BASELINE


@pytest.fixture
def namespace(request: pytest.FixtureRequest, kube: Kube, ivc_session: SuiteSession, pod_security: PodSecurity) -> str:
    """A fresh namespace per test, labelled with the run id and the Pod Security level its Pods need. Its
    Pods go when the test ends (`launch`); the namespace itself is deleted with the run's others at the end:
    each deletion sets the namespace controller listing every resource type, CPU a 2-core run needs."""
    name = test_namespace(ivc_session.run_id, request.node.nodeid)
    with admitted(f"namespace {name}"):
        kube.create_namespace(
            name,
            labels={RUN_LABEL: ivc_session.run_id, **pod_security_labels(pod_security)},
            annotations={"ivc.conformance/test": request.node.nodeid},
        )
    request.node.stash.setdefault(NAMESPACES_KEY, []).append(name)
    kube.wait_for_service_account(name)
    return name


def shaped(pod: dict[str, Any], level: PodSecurity, group: NodeGroup | None, suite: SuiteSession) -> dict[str, Any]:
    """A rendered Pod as the cluster takes it: the level's securityContext; pinned to its node group when
    the cluster's nodes differ."""
    secured(pod, level)
    if group is not None and suite.capabilities.multi_group:
        pinned(pod, group.nodes)
    return pod


LaunchPod = Callable[..., PodUnderTest]


@pytest.fixture(scope="session")
def mount_lock(ivc_session: SuiteSession) -> RunLock:
    """Shared by tests that start Pods, exclusive for tests that read node-wide counters (run_locks.py)."""
    return RunLock(ivc_session.run_id, "mounts")


@pytest.fixture(scope="session")
def node_lock(ivc_session: SuiteSession) -> RunLock:
    """Shared by tests that reach a node, exclusive for tests that restart a node's components (run_locks.py)."""
    return RunLock(ivc_session.run_id, "nodes")


@pytest.fixture
def exclusive_node_counters(mount_lock: RunLock) -> Iterator[None]:
    """While the test runs, no other test of the run starts Pods: the kubelet's counters are its alone."""
    with mount_lock.exclusive():
        yield


@pytest.fixture(autouse=True)
def _nodes_shared(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every test that reaches a node holds the node lock shared while it runs (from before its first Pod
    until its Pods are deleted), but the tests that restart a node's components: they hold it exclusive."""
    suite = request.config.stash.get(SESSION_KEY, None)
    names = set(request.fixturenames)
    if suite is None or NODES_EXCLUSIVE_FIXTURE in names or not NODE_FIXTURES & names:
        yield
        return
    with request.getfixturevalue("node_lock").shared():
        yield


@pytest.fixture
def node_counters(
    exclusive_node_counters: None, kube: Kube, namespace: str, node_group: NodeGroup | None
) -> NodeCounters:
    """A node of the test's node group where no other Pod with an image volume is starting containers, and
    its kubelet's counters (counters.py); `with node_counters.alone():` around the measurement skips it when
    that did not hold. Pin the test's Pod there: `launch(..., node_name=node_counters.node)`."""
    candidates = list(node_group.nodes) if node_group is not None else [n["metadata"]["name"] for n in kube.nodes()]
    return NodeCounters(kube, quiet_node(kube, candidates, namespace), namespace)


@pytest.fixture
def launch(
    request: pytest.FixtureRequest,
    kube: Kube,
    namespace: str,
    ivc_session: SuiteSession,
    manifests_dir: Traversable,
    pod_start_timeout: float,
    mount_lock: RunLock,
    pod_security: PodSecurity,
    node_group: NodeGroup | None,
) -> Iterator[LaunchPod]:
    """`launch("basic", reference=…)` renders a manifest, creates the Pod and waits until Running.

    Pass `wait=False` to get the Pod right after creation (failure tests wait for reasons). The Pods
    are deleted when the test ends, before the mount lock is released: a Pod the kubelet keeps retrying
    must not count as another test's mount.
    """
    for exclusive in sorted(EXCLUSIVE_FIXTURES & set(request.fixturenames)):
        request.getfixturevalue(exclusive)  # first: the locks' order (run_locks.py), and no shared hold of our own
        # taken before an exclusive one (that would deadlock)
    counter = iter(range(1, 1000))
    pods: list[PodUnderTest] = []
    with mount_lock.shared():  # re-entrant: inside the test's own exclusive hold, it passes

        def create(
            template: str = "basic", *, wait: bool = True, name: str | None = None, **params: Any
        ) -> PodUnderTest:
            pod_name = name or f"{template}-{next(counter)}"
            body = render(template, manifests_dir, name=pod_name, shell_image=ivc_session.shell_image, **params)
            shaped(body, pod_security, node_group, ivc_session)
            with admitted(f"Pod {namespace}/{pod_name}"):
                pod = PodUnderTest(kube, namespace, pod_name, kube.create_pod(namespace, body))
            pods.append(pod)
            return pod.wait_running(pod_start_timeout) if wait else pod

        yield create
        for pod in pods:
            record_pod(request.node, pod)  # now: a Pod created with wait=False may have been awaited since
            with contextlib.suppress(Exception):  # the namespace goes anyway; this only ends retries early
                pod.delete()


@pytest.fixture
def render_pod(
    ivc_session: SuiteSession, manifests_dir: Traversable, pod_security: PodSecurity, node_group: NodeGroup | None
) -> Callable[..., dict[str, Any]]:
    """Render a manifest without creating it (API validation and dry-run tests), shaped as `launch` would."""

    def make(template: str = "basic", *, name: str = "probe", **params: Any) -> dict[str, Any]:
        body = render(template, manifests_dir, name=name, shell_image=ivc_session.shell_image, **params)
        return shaped(body, pod_security, node_group, ivc_session)

    return make


def record_pod(node: pytest.Item, pod: PodUnderTest) -> None:
    """One entry per Pod a test created: its start latency in seconds, empty when it was not awaited Running."""
    seconds = "" if pod.start_seconds is None else f"{pod.start_seconds:.3f}"
    node.user_properties.append((POD_PROPERTY, seconds))


PushToPrivate = Callable[..., PushedArtifact]


@pytest.fixture
def private_push(
    request: pytest.FixtureRequest, registry: RegistryClient, ivc_session: SuiteSession
) -> Iterator[PushToPrivate]:
    """Push to a repository only this test uses: for moving tags and never-pulled images.

    `private_push("seed", tag="v1")` pushes the catalog entry (or pass an ImageSpec/ArtifactSpec).
    Tags pushed here are deleted from the registry afterwards.
    """
    yield from _pushes_to(registry, artifact_catalog.private_repository(ivc_session.run_id, request.node.nodeid))


def _pushes_to(registry: RegistryClient, repository: str) -> Iterator[PushToPrivate]:
    pushed: list[str] = []

    def push(what: str | ImageSpec | ArtifactSpec, tag: str = "v1") -> PushedArtifact:
        spec = artifact_catalog.spec_of(what) if isinstance(what, str) else what
        name = what if isinstance(what, str) else "custom"
        pushed.append(tag)
        return artifact_catalog.push_named(registry, name, spec, repository, tag)

    yield push
    for tag in dict.fromkeys(pushed):
        # Best effort: the local registry is wiped on `down` anyway.
        with contextlib.suppress(Exception):
            registry.delete_tag(repository, tag)


@pytest.fixture(scope="session")
def _shared_pods(
    kube: Kube,
    ivc_session: SuiteSession,
    manifests_dir: Traversable,
    pod_start_timeout: float,
    mount_lock: RunLock,
) -> SharedPods:
    return SharedPods(
        kube,
        ivc_session.run_id,
        ivc_session.shell_image,
        ivc_session.artifacts,
        manifests_dir,
        pod_start_timeout,
        mount_lock,
        group_nodes=ivc_session.group_nodes(),
    )


SharedPod = Callable[..., PodUnderTest]


@pytest.fixture
def shared_pod(request: pytest.FixtureRequest, _shared_pods: SharedPods, node_group: NodeGroup | None) -> SharedPod:
    """`shared_pod("layered")`: a Running Pod with catalog artifact `layered` at /volume, shared by
    every test of the run that asks for the same one (read-only probes cannot change it, and a Pod per
    probe would multiply the run time; see shared_pods.py). `shared_pod("seed", "init-sidecar")` picks
    another manifest; extra parameters go to the manifest and make another Pod. The namespace is
    registered on the test before the Pod is waited for, so a failure's diagnostics show it. On a
    cluster whose nodes differ, each node group has its own."""
    group = node_group.id if node_group is not None and _shared_pods.group_nodes else None

    def get(artifact: str, template: str = "basic", **params: Any) -> PodUnderTest:
        registered = request.node.stash.setdefault(NAMESPACES_KEY, [])
        if _shared_pods.namespace not in registered:
            registered.append(_shared_pods.namespace)
        pod, started_here = _shared_pods.get(shape(artifact, template, **params).on(group))
        if started_here:  # its start counts once, in the test that waited for it
            record_pod(request.node, pod)
        return pod

    return get


SharedVolume = Callable[..., tuple[PodUnderTest, str]]


@pytest.fixture
def shared_volume(request: pytest.FixtureRequest, shared_pod: SharedPod) -> SharedVolume:
    """`shared_volume(artifact, template, path, own, **params)` → (Pod, path): one of several image volumes of a
    run-wide Pod (`shared_pod(artifact, template, **params)`, the volume mounted at `path`), for tests that
    only read what each volume holds: one Pod start for all of them. Where that Pod does not start (a volume
    refused, or its pulls blocked), in a Pod of the test's own (`launch("basic", **own)`, at /volume), so
    the outcome is the volume's own. The test's namespace is only made then."""

    def get(artifact: str, template: str, path: str, own: dict[str, Any], **params: Any) -> tuple[PodUnderTest, str]:
        try:
            return shared_pod(artifact, template, **params), path
        except (SharedPodFailed, EnvironmentProblem):
            launch: LaunchPod = request.getfixturevalue("launch")
            return launch("basic", **own), "/volume"

    return get


@pytest.fixture
def seed_pod(shared_pod: SharedPod) -> PodUnderTest:
    """One Running Pod with the seed artifact at /volume, shared by the run's read-only probes."""
    return shared_pod("seed")


@pytest.fixture
def absent_reference(request: pytest.FixtureRequest, ivc_session: SuiteSession) -> str:
    """A fully qualified reference in the run's registry that nothing ever pushes."""
    repository = artifact_catalog.private_repository(ivc_session.run_id, request.node.nodeid)
    return f"{ivc_session.handle.registry.pull}/{repository}/absent:v1"


# -- private registries: pull secrets (the provider's TLS + htpasswd registry) ----------------
@pytest.fixture(scope="session")
def auth_registry(ivc_session: SuiteSession) -> RegistryClient:
    """The registry that refuses anonymous pulls. Skips the test, naming the cause, when the provider runs
    none (existing clusters: --auth-registry with --pull-secret) or when that registry serves anonymous
    pulls after all (then a Pod without credentials would pull, and the checks would prove nothing)."""
    endpoint = ivc_session.handle.auth_registry
    if endpoint is None or not endpoint.username or not endpoint.password:
        pytest.skip(
            f"the {ivc_session.handle.provider} provider offers no authenticated registry "
            "(ClusterHandle.auth_registry is unset): --cluster=local and kind run one (TLS + htpasswd); for "
            "existing clusters pass --auth-registry HOST:PORT with --pull-secret"
        )
    client = RegistryClient(endpoint)
    probe = artifact_catalog.push_named(client, "seed", artifact_catalog.spec_of("seed"), ANONYMOUS_PROBE)
    anonymous = RegistryClient(replace(endpoint, username=None, password=None))
    try:
        anonymous.fetch_manifest(ANONYMOUS_PROBE, probe.tag)
    except RegistryError:
        return client  # refused, as it must be
    pytest.skip(
        f"the authenticated registry {endpoint.push} serves anonymous pulls ({ANONYMOUS_PROBE}:{probe.tag}): the "
        "pull-secret checks need a registry that refuses them"
    )


ANONYMOUS_PROBE = f"{artifact_catalog.SHARED_REPOSITORY_PREFIX}/anonymous-probe"


@pytest.fixture
def auth_push(
    request: pytest.FixtureRequest, auth_registry: RegistryClient, ivc_session: SuiteSession
) -> Iterator[PushToPrivate]:
    """`auth_push("seed")`: like `private_push`, into the authenticated registry. The repository is
    the test's own, so no other test's credentials ever pulled it onto the node."""
    yield from _pushes_to(auth_registry, artifact_catalog.private_repository(ivc_session.run_id, request.node.nodeid))


PULL_SECRET_NAME = "ivc-pull-secret"


def docker_config_secret(name: str, endpoint: RegistryEndpoint) -> dict[str, Any]:
    """A `kubernetes.io/dockerconfigjson` Secret with the credentials of `endpoint` for its pull host."""
    user_password = f"{endpoint.username}:{endpoint.password}"
    auths = {
        endpoint.pull: {
            "username": endpoint.username,
            "password": endpoint.password,
            "auth": base64.b64encode(user_password.encode()).decode(),
        }
    }
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "type": "kubernetes.io/dockerconfigjson",
        "data": {".dockerconfigjson": base64.b64encode(json.dumps({"auths": auths}).encode()).decode()},
    }


@pytest.fixture
def pull_secret(kube: Kube, namespace: str, auth_registry: RegistryClient) -> str:
    """The name of a pull secret for the authenticated registry, in the test's namespace."""
    with admitted(f"Secret {namespace}/{PULL_SECRET_NAME}"):
        kube.create(namespace, "Secret", docker_config_secret(PULL_SECRET_NAME, auth_registry.endpoint))
    return PULL_SECRET_NAME


# -- the node behind the API ------------------------------------------------------------------
@pytest.fixture(scope="session")
def crictl(ivc_session: SuiteSession) -> Callable[[str], Crictl]:
    """`crictl(node)`: crictl on that node (the Pod's: `pod.node`); skips when the provider gives no node access."""
    access = ivc_session.handle.node_access
    if not access.available:
        pytest.skip(
            f"the {ivc_session.handle.provider} provider gives no node access (NodeAccess.crictl is unset): "
            "--cluster=local and --cluster=kind run crictl on the node, --cluster=existing with --node-command"
        )
    return lambda node: Crictl(access, node)


@pytest.fixture(scope="session")
def node_shell(ivc_session: SuiteSession) -> Callable[[str], Node]:
    """`node_shell(pod.node)`: commands and the mount table on that node; skips without node access (the
    table marks what needs it not applicable there)."""
    access = ivc_session.handle.node_access
    if not access.available:
        pytest.skip(
            f"the {ivc_session.handle.provider} provider gives no node access (NodeAccess is empty; "
            "--cluster=existing takes --node-command)"
        )
    return lambda node: Node(access, node)


@pytest.fixture(scope="session")
def restart_timeout() -> float:
    """Seconds a kubelet or runtime restart may take until it serves again."""
    return 120.0


@pytest.fixture(scope="session")
def run_progress(ivc_session: SuiteSession) -> RunProgress:
    """Which tests of the run have finished, across its workers (recorded by the plugin as each ends)."""
    return RunProgress(ivc_session.run_id)


@pytest.fixture(scope="session")
def others_timeout() -> float:
    """Seconds a restart waits for the run's other tests to finish before it takes the nodes anyway. Below
    the per-test timeout (600 s, setup included), so a lost worker's test ends the wait, not the restart."""
    return 300.0


@pytest.fixture
def restart_on_node(
    request: pytest.FixtureRequest,
    node_lock: RunLock,
    run_progress: RunProgress,
    others_timeout: float,
    node_shell: Callable[[str], Node],
    kube: Kube,
    restart_timeout: float,
) -> Iterator[Callable[[str, str], None]]:
    """`restart_on_node(pod.node, "kubelet" | "runtime")`, with the nodes to this test alone: it starts once
    every test of the run that restarts nothing has finished (the `disruptive` marker hands such tests out
    last), and while it runs the others wait (the node lock, exclusive)."""
    others: frozenset[str] = request.config.stash.get(UNDISRUPTIVE_KEY, frozenset())
    with contextlib.suppress(WaitTimeout):  # a lost worker's test never finishes: the lock alone keeps it safe
        if not run_progress.wait_until_finished(others, others_timeout):
            pytest.skip("the run stops early (-x or --maxfail reached): no node restart after that")
    with node_lock.exclusive():

        def restart(node: str, component: str) -> None:
            shell = node_shell(node)
            if component not in shell.access.restart:
                pytest.skip(
                    f"the provider does not let the suite restart the {component} (NodeAccess.restart; "
                    "--cluster=existing takes --allow-node-restarts)"
                )
            shell.restart(component, timeout=restart_timeout)
            kube.wait_kubelet_serving(node, timeout=restart_timeout)

        yield restart
