"""The kind provider's pure parts: config rendering by version, names, node-side files (no Docker, no cluster)."""

from __future__ import annotations

import json
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from conformance.cluster import kind
from conformance.cluster.errors import ClusterError
from conformance.cluster.kind import (
    CRIO_SOCKET,
    DEFAULT_K8S_VERSION,
    KindProvider,
    crio_stream,
    feature_gates_for,
    node_image_tag,
    parse_tool_version,
    registries_drop_in,
    render_kind_config,
)

REPO = Path(__file__).resolve().parents[1]


def rendered(version: str, **kwargs: object) -> dict:
    return yaml.safe_load(render_kind_config(version, **kwargs))


def cluster_patches(config: dict) -> list[dict]:
    return [yaml.safe_load(patch) for patch in config["kubeadmConfigPatches"]]


def node_patches(config: dict) -> list[dict]:
    (node,) = config["nodes"]
    return [yaml.safe_load(patch) for patch in node["kubeadmConfigPatches"]]


@pytest.mark.parametrize("version", ["v1.31.0", "v1.33.1", "v1.34.0", "v1.35.0", "1.35.4"])
def test_gate_is_set_before_ga(version: str) -> None:
    assert rendered(version)["featureGates"] == {"ImageVolume": True}


@pytest.mark.parametrize("version", ["v1.36.0", DEFAULT_K8S_VERSION, "v1.37.0-rc.1", "v1.38.0"])
def test_gate_is_absent_once_locked(version: str) -> None:
    # GA + LockToDefault in 1.36; a removed gate (≈1.38) would make components exit.
    assert "featureGates" not in rendered(version)


def test_one_control_plane_node_on_crio_socket() -> None:
    config = rendered("v1.35.0")
    assert config["kind"] == "Cluster"
    assert config["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    assert [node["role"] for node in config["nodes"]] == ["control-plane"]
    patches = node_patches(config)
    assert {p["kind"] for p in patches} == {"InitConfiguration", "JoinConfiguration"}
    assert all(p["nodeRegistration"] == {"criSocket": "unix:///var/run/crio/crio.sock"} for p in patches)
    assert CRIO_SOCKET == "unix:///var/run/crio/crio.sock"


@pytest.mark.parametrize("version", ["v1.31.0", "v1.35.0", "v1.36.1"])
def test_fail_cgroup_v1_is_disabled_for_the_kubelet(version: str) -> None:
    kubelet = [p for p in cluster_patches(rendered(version)) if p["kind"] == "KubeletConfiguration"]
    assert kubelet == [{"kind": "KubeletConfiguration", "failCgroupV1": False}]


def test_patches_carry_no_api_version() -> None:
    # kind then applies them to whichever kubeadm API version (v1beta3/v1beta4) the node speaks.
    config = rendered("v1.35.0", admission_plugins=["AlwaysPullImages"])
    assert all("apiVersion" not in p for p in cluster_patches(config) + node_patches(config))


def test_admission_plugins_keep_node_restriction() -> None:
    (cluster,) = [
        p
        for p in cluster_patches(rendered("v1.36.1", admission_plugins=["AlwaysPullImages"]))
        if p["kind"] == "ClusterConfiguration"
    ]
    assert cluster["apiServer"]["extraArgs"] == {"enable-admission-plugins": "NodeRestriction,AlwaysPullImages"}
    assert all(p["kind"] != "ClusterConfiguration" for p in cluster_patches(rendered("v1.36.1")))


def test_requested_gates() -> None:
    assert feature_gates_for("v1.35.0", {"ImageVolume": False}) == {"ImageVolume": False}
    assert feature_gates_for("v1.34.0", {"Foo": True}) == {"ImageVolume": True, "Foo": True}
    assert feature_gates_for("v1.36.1", {"ImageVolume": True, "Foo": False}) == {"Foo": False}
    with pytest.raises(ClusterError, match="locked on"):
        feature_gates_for("v1.36.1", {"ImageVolume": False})


def test_versions_without_image_volumes_are_refused() -> None:
    with pytest.raises(ClusterError, match=r"v1\.31 or newer"):
        render_kind_config("v1.30.4")
    with pytest.raises(ClusterError, match="not a release"):
        render_kind_config("latest")


def test_checked_in_config_matches_the_renderer() -> None:
    assert (REPO / "kind" / "cluster-crio.yaml").read_text() == render_kind_config(DEFAULT_K8S_VERSION)


def test_containerd_comparison_config_is_stock_kind() -> None:
    config = yaml.safe_load((REPO / "kind" / "cluster-containerd.yaml").read_text())
    assert "criSocket" not in yaml.safe_dump(config)
    assert config["nodes"][0]["image"].startswith("kindest/node:v1.3")
    assert cluster_patches(config) == [{"kind": "KubeletConfiguration", "failCgroupV1": False}]


def test_node_image_names() -> None:
    assert node_image_tag("v1.36.1") == "ivc/kind-node-crio:v1.36.1-crio1.36"
    assert node_image_tag("1.35.4", "v1.34") == "ivc/kind-node-crio:v1.35.4-crio1.34"
    assert crio_stream(None, "v1.37.0-rc.1") == "v1.37"
    assert crio_stream("1.36", "v1.36.1") == "v1.36"
    with pytest.raises(ClusterError, match="minor stream"):
        crio_stream("1.36.2", "v1.36.1")


def test_registry_drop_in_maps_localhost_to_the_registry_container() -> None:
    (entry,) = tomllib.loads(registries_drop_in())["registry"]
    assert entry == {"prefix": "localhost:5001", "location": "ivc-registry:5000", "insecure": True}


def test_dockerfile_follows_the_crio_recipe() -> None:
    text = (REPO / "kind" / "node-crio.Dockerfile").read_text()
    assert "FROM ${KIND_NODE_IMAGE}" in text
    assert "download.opensuse.org/repositories/isv:/cri-o:/stable:/${CRIO_VERSION}/deb" in text
    assert "systemctl disable containerd && systemctl enable crio" in text
    assert "runtime-endpoint: unix:///var/run/crio/crio.sock" in text


def test_tool_versions() -> None:
    assert parse_tool_version("kind v0.32.0 go1.26.1 linux/amd64") == (0, 32, 0)
    assert parse_tool_version("garbage") is None


def test_provider_validates_options_without_touching_docker() -> None:
    provider = KindProvider(
        feature_gates="ImageVolume=false", admission_plugins="AlwaysPullImages, Foo", k8s_version="1.35.4"
    )
    assert provider.feature_gates == {"ImageVolume": False}
    assert provider.admission_plugins == ("AlwaysPullImages", "Foo")
    assert provider.node_image == "ivc/kind-node-crio:v1.35.4-crio1.35"
    assert provider.context == "kind-ivc"
    with pytest.raises(ClusterError, match="lowercase"):
        KindProvider(cluster_name="My_Cluster")


def test_missing_kind_is_one_actionable_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("KIND_EXPERIMENTAL_PROVIDER", raising=False)
    with pytest.raises(ClusterError) as error:
        KindProvider().up()
    assert str(error.value) == (
        "kind not found on PATH: install kind ≥0.27 (https://kind.sigs.k8s.io/docs/user/quick-start/#installation) "
        "or use --cluster=local/existing"
    )


def test_down_after_nothing_was_created_needs_no_tools(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    provider = KindProvider()
    with pytest.raises(ClusterError):
        provider.up()
    provider.down()  # up failed before creating anything: nothing to remove, no kind needed


def test_failed_bring_up_removes_what_it_created(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C in the middle of `kind create`: the cluster and the registry this run made are deleted."""
    calls: list[str] = []
    provider = KindProvider()
    monkeypatch.setattr(provider, "_find_tools", lambda: None)
    monkeypatch.setattr(provider, "_cluster_exists", lambda: False)
    monkeypatch.setattr(provider, "_ensure_node_image", lambda: None)

    def ensure_registry() -> None:
        provider._created_registry = True

    def create(config: str) -> None:
        provider._created_cluster = True
        raise KeyboardInterrupt

    monkeypatch.setattr(provider, "_ensure_registry", ensure_registry)
    monkeypatch.setattr(provider, "_create_cluster", create)
    monkeypatch.setattr(provider, "_remove", lambda *, cluster, registry: calls.append(f"{cluster},{registry}"))
    with pytest.raises(KeyboardInterrupt):
        provider.up()
    assert calls == ["True,True"]
    provider.down()  # already cleaned: nothing left to remove
    assert calls == ["True,True"]


def test_kind_module_never_downloads_tools() -> None:
    source = Path(kind.__file__).read_text()
    assert "urlopen" not in source and "curl" not in source


# -- the provider's command sequence, against stand-in `kind` and `docker` executables ------------------

FAKE_TOOL = r"""
import json, os, sys
state_file = os.environ["FAKE_STATE"]
state = json.load(open(state_file)) if os.path.exists(state_file) else {
    "clusters": [], "images": [], "registry": None, "files": {}, "calls": [], "fail": os.environ.get("FAKE_FAIL", "")}
tool, args = os.path.basename(sys.argv[0]), sys.argv[1:]
state["calls"].append(" ".join([tool, *args]))
code, out = 0, ""

def opt(name):
    return args[args.index(name) + 1]

if tool == "kind":
    if args[0] == "version":
        out = "kind v0.32.0 go1.26.1 linux/amd64\n"
    elif args[:2] == ["get", "clusters"]:
        out = "".join(c + "\n" for c in state["clusters"])
    elif args[:2] == ["get", "nodes"]:
        out = opt("--name") + "-control-plane\n"
    elif args[:2] == ["get", "kubeconfig"]:
        out = "apiVersion: v1\nkind: Config\n"
    elif args[:2] == ["create", "cluster"]:
        if state["fail"] == "create":
            code, out = 1, "ERROR: failed to create cluster: kubeadm init failed"
        else:
            state["clusters"].append(opt("--name"))
            state["config"] = open(opt("--config")).read()
            open(opt("--kubeconfig"), "w").write("apiVersion: v1\nkind: Config\n")
    elif args[:2] == ["delete", "cluster"]:
        name = opt("--name")
        state["clusters"] = [c for c in state["clusters"] if c != name]
        state["files"] = {k: v for k, v in state["files"].items() if not k.startswith(name + ":")}
elif tool == "docker":
    if args[0] == "version":
        down = "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?"
        code, out = (1, down) if state["fail"] == "daemon" else (0, "27.5.1\n")
    elif args[:2] == ["image", "inspect"]:
        code = 0 if args[-1] in state["images"] else 1
    elif args[0] == "build":
        state["images"].append(opt("-t"))
        state["build"] = args
    elif args[:3] == ["inspect", "--type", "container"]:
        reg = state["registry"]
        code, out = (1, "") if reg is None else (0, json.dumps([{"State": {"Running": True},
            "Config": {"Labels": reg["labels"]}, "NetworkSettings": {"Networks": {n: {} for n in reg["networks"]}}}]))
    elif args[:2] == ["inspect", "-f"]:
        out = "ivc/kind-node-crio:v1.36.1-crio1.36\n"
    elif args[0] == "run":
        labels = dict(args[i + 1].split("=", 1) for i, a in enumerate(args) if a == "--label")
        state["registry"] = {"labels": labels, "networks": ["bridge"], "args": args}
    elif args[:2] == ["network", "connect"]:
        state["registry"]["networks"].append(args[2])
    elif args[:2] == ["rm", "-f"]:
        state["registry"] = None
    elif args[0] == "exec":
        rest = [a for a in args[1:] if a != "-i"]
        node, cmd = rest[0], rest[1:]
        if node.removesuffix("-control-plane") not in state["clusters"]:
            code, out = 1, "Error: No such container: " + node
        elif cmd[:2] == ["sh", "-c"] and "cat >" in cmd[2]:
            path = cmd[2].split("cat >")[1].strip().strip("'")
            state["files"][node.removesuffix("-control-plane") + ":" + path] = sys.stdin.read()
        elif cmd[:1] == ["cat"]:
            key = node.removesuffix("-control-plane") + ":" + cmd[1]
            code, out = (0, state["files"][key]) if key in state["files"] else (1, "No such file")
json.dump(state, open(state_file, "w"))
(sys.stdout if code == 0 else sys.stderr).write(out)
sys.exit(code)
"""


@pytest.fixture
def fake_tools(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """`kind` and `docker` stand-ins that keep their world in a JSON file; returns that file."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("kind", "docker"):
        script = bin_dir / tool
        script.write_text(f"#!{sys.executable}\n{FAKE_TOOL}")
        script.chmod(0o755)
    state = tmp_path / "world.json"
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setenv("FAKE_STATE", str(state))
    monkeypatch.setenv("IVC_STATE_DIR", str(tmp_path / "ivc-state"))
    monkeypatch.delenv("KIND_EXPERIMENTAL_PROVIDER", raising=False)
    # The API parts need a real apiserver; they are plain client calls.
    monkeypatch.setattr(KindProvider, "_publish_registry", lambda self: None)
    monkeypatch.setattr(KindProvider, "_wait_for_default_service_account", lambda self: None)
    return state


def world(state: Path) -> dict:
    return json.loads(state.read_text())


def test_up_builds_creates_and_wires_the_registry(fake_tools: Path, tmp_path: Path) -> None:
    handle = KindProvider(k8s_version="v1.35.4").up()
    seen = world(fake_tools)
    assert seen["build"][-1] == str(REPO / "kind") and "ivc/kind-node-crio:v1.35.4-crio1.35" in seen["build"]
    assert "KIND_NODE_IMAGE=kindest/node:v1.35.4" in seen["build"] and "CRIO_VERSION=v1.35" in seen["build"]
    create = next(c for c in seen["calls"] if c.startswith("kind create cluster"))
    kubeconfig = tmp_path / "ivc-state" / "kind" / "ivc" / "kubeconfig"
    assert f"--kubeconfig {kubeconfig}" in create and "--image ivc/kind-node-crio:v1.35.4-crio1.35" in create
    assert yaml.safe_load(seen["config"])["featureGates"] == {"ImageVolume": True}
    registry = seen["registry"]
    assert "127.0.0.1:5001:5000" in registry["args"] and "registry:2" in registry["args"]
    assert registry["labels"]["io.ivc.managed-by"] == "ivc-conformance" and registry["networks"] == ["bridge", "kind"]
    assert seen["files"]["ivc:/etc/containers/registries.conf.d/50-ivc-registry.conf"] == registries_drop_in()
    assert seen["files"]["ivc:/kind/ivc-owner"].startswith("ivc-conformance ")
    assert "docker exec ivc-control-plane systemctl reload crio" in seen["calls"]
    assert handle.kubeconfig == str(kubeconfig) and handle.context == "kind-ivc"
    assert (handle.registry.push, handle.registry.pull, handle.created_by_run) == (
        "localhost:5001",
        "localhost:5001",
        True,
    )
    assert kubeconfig.stat().st_mode & 0o077 == 0


def test_a_later_process_removes_only_what_carries_our_marks(fake_tools: Path) -> None:
    KindProvider().up()
    KindProvider().down()  # a fresh process (`python -m conformance.cluster down`)
    seen = world(fake_tools)
    assert seen["clusters"] == [] and seen["registry"] is None
    assert "kind delete cluster --name ivc --kubeconfig" in " | ".join(seen["calls"])


def test_a_users_cluster_is_reused_and_never_deleted(fake_tools: Path) -> None:
    fake_tools.write_text(
        json.dumps({"clusters": ["ivc"], "images": [], "registry": None, "files": {}, "calls": [], "fail": ""})
    )
    provider = KindProvider()
    handle = provider.running_handle()
    assert handle is not None and handle.created_by_run is False
    provider.down()  # same process: only the registry it started goes
    KindProvider().down()  # fresh process: no owner mark in the node, so the cluster stays
    seen = world(fake_tools)
    assert seen["clusters"] == ["ivc"] and seen["registry"] is None
    assert not any(
        c.startswith("kind create") or c.startswith("docker build") or c.startswith("kind delete")
        for c in seen["calls"]
    )


def test_failed_create_cleans_up_and_reports_one_line(fake_tools: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_FAIL", "create")
    with pytest.raises(ClusterError) as error:
        KindProvider().up()
    first_line = str(error.value).splitlines()[0]
    assert first_line.startswith("kind create cluster 'ivc' failed: ")
    assert first_line.endswith("exited 1: ERROR: failed to create cluster: kubeadm init failed")
    seen = world(fake_tools)
    assert seen["registry"] is None  # the registry this run started is gone again
    assert any(c.startswith("kind delete cluster --name ivc") for c in seen["calls"])


def test_unreachable_docker_daemon_is_one_line(fake_tools: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_FAIL", "daemon")
    with pytest.raises(ClusterError) as error:
        KindProvider().up()
    assert str(error.value) == (
        "docker daemon is not reachable (Cannot connect to the Docker daemon at unix:///var/run/docker.sock. "
        "Is the docker daemon running?): start Docker or check DOCKER_HOST, or use --cluster=local/existing"
    )
