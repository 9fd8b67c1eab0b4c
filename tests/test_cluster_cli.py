"""`python -m conformance.cluster`: usage errors, ClusterError → exit 2 without traceback, saved handles.

The `existing` provider is exercised against files and a closed local port only: no cluster needed.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import conformance.cluster.__main__ as cli
from conformance.cluster import ClusterError, ClusterHandle, ClusterOptions, make_provider
from conformance.cluster.contract import NodeAccess, RegistryEndpoint
from conformance.cluster.existing import ExistingProvider
from conformance.cluster.gates import parse_feature_gates
from conformance.cluster.registries import credentials_for
from conformance.cluster.state import handle_path, load_handle, load_options, save
from conformance.cluster.systemd_nodes import systemd_node_access

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def state(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Never read or write the real /var/lib/ivc or the user's kubeconfig."""
    monkeypatch.setenv("IVC_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-such-kubeconfig"))
    return tmp_path / "state"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_kubeconfig(
    path: Path, contexts: tuple[str, ...] = ("a", "b"), current: str | None = "a", server: str = "https://127.0.0.1:1"
) -> Path:
    entries = "\n".join(f"- name: {c}\n  context: {{cluster: c, user: u}}" for c in contexts)
    current_line = f"current-context: {current}\n" if current else ""
    path.write_text(
        textwrap.dedent(
            f"""\
            apiVersion: v1
            kind: Config
            clusters:
            - name: c
              cluster: {{server: "{server}", insecure-skip-tls-verify: true}}
            users:
            - name: u
              user: {{token: not-a-real-token}}
            """
        )
        + f"contexts:\n{entries}\n"
        + current_line
    )
    return path


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# -- usage errors (argparse: exit 2) ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        ((), "the following arguments are required: command"),
        (("start",), "invalid choice: 'start'"),
        (("up", "--provider", "nope"), "invalid choice: 'nope'"),
        (("up", "--feature-gates", "ImageVolume=maybe"), "NAME=true|false"),
        (("up", "--provider", "kind", "--registry", "x:1"), "unrecognized arguments: --registry"),
        (("restart", "--component", "scheduler"), "invalid choice: 'scheduler'"),
        (("restart", "--provider", "existing", "--kubeconfig", "/nonexistent"), "restart needs --component"),
    ],
)
def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], needle: str) -> None:
    code, out, err = run_cli(capsys, *argv)
    assert code == 2
    assert needle in err
    assert out == ""


def test_help_shows_the_providers_own_options(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "--provider", "existing", "--help")
    assert code == 0
    assert "--registry" in out and "--pull-secret" in out and "--node-image" not in out
    code, out, _ = run_cli(capsys, "--help")
    assert code == 0 and "default: kind" in out and "--node-image" in out


# -- ClusterError → one line on stderr, exit 2 ---------------------------------------------------------


def test_missing_kubeconfig(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(
        capsys,
        "up",
        "--provider",
        "existing",
        "--kubeconfig",
        "/nonexistent/kubeconfig",
        "--registry",
        "localhost:5000",
    )
    assert code == 2
    assert err == (
        "ivc: kubeconfig /nonexistent/kubeconfig (--kubeconfig) does not exist: "
        "pass --kubeconfig PATH or set KUBECONFIG\n"
    )
    assert out == ""


def test_registry_is_required_first(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "up", "--cluster", "existing", "--kubeconfig", "/nonexistent/kubeconfig")
    assert code == 2
    assert err == (
        "ivc: --registry HOST:PORT is required with --cluster=existing: the suite pushes its own test artifacts "
        "there (the cluster must be able to pull from it)\n"
    )


def test_registry_must_be_host_port(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "up", "--provider", "existing", "--registry", "http://localhost:5000/v2")
    assert code == 2 and "is not HOST:PORT" in err


def test_unknown_context_lists_the_available_ones(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    kubeconfig = write_kubeconfig(tmp_path / "kc")
    code, _, err = run_cli(
        capsys,
        "up",
        "--provider",
        "existing",
        "--kubeconfig",
        str(kubeconfig),
        "--context",
        "foo",
        "--registry",
        "localhost:5000",
    )
    assert code == 2
    assert err == f"ivc: kubeconfig {kubeconfig} has no context 'foo' (available: a, b)\n"


def test_no_current_context(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    kubeconfig = write_kubeconfig(tmp_path / "kc", current=None)
    code, _, err = run_cli(
        capsys, "up", "--provider", "existing", "--kubeconfig", str(kubeconfig), "--registry", "localhost:5000"
    )
    assert code == 2 and "has no current-context: pass --context (available: a, b)" in err


def test_unreachable_cluster_is_bounded_and_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    server = f"https://127.0.0.1:{closed_port()}"
    kubeconfig = write_kubeconfig(tmp_path / "kc", server=server)
    code, _, err = run_cli(
        capsys,
        "up",
        "--provider",
        "existing",
        "--kubeconfig",
        str(kubeconfig),
        "--context",
        "b",
        "--registry",
        "localhost:5000",
    )
    assert code == 2
    assert err.startswith(f"ivc: cluster at {server} is unreachable: ")
    assert err.endswith("; check --kubeconfig/--context\n")
    assert err.count("\n") == 1 and "object at 0x" not in err


def test_env_without_a_running_cluster(capsys: pytest.CaptureFixture[str], state: Path) -> None:
    code, out, err = run_cli(capsys, "env", "--provider", "local")
    assert code == 2 and out == ""
    assert err == "ivc: no healthy local cluster is running: `python -m conformance.cluster up --provider local`\n"


def test_entry_point_prints_no_traceback() -> None:
    env = dict(os.environ, IVC_STATE_DIR="/nonexistent-ivc-state")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "conformance.cluster",
            "up",
            "--provider",
            "existing",
            "--kubeconfig",
            "/nonexistent/kubeconfig",
            "--registry",
            "localhost:5000",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stdout == ""


def test_interrupt_exits_130(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    class Interrupted:
        name = "kind"

        def up(self) -> ClusterHandle:
            raise KeyboardInterrupt

    monkeypatch.setattr(cli, "make_provider", lambda options: Interrupted())
    code, _, err = run_cli(capsys, "up")
    assert code == 130 and err == "interrupted; cleaned up\n"


# -- handles and exports -------------------------------------------------------------------------------


def kind_handle() -> ClusterHandle:
    return ClusterHandle(
        provider="kind",
        kubeconfig="/var/lib/ivc/kind/ivc/kube config",
        context="kind-ivc",
        registry=RegistryEndpoint(push="localhost:5001", pull="localhost:5001"),
        created_by_run=True,
        description="kind cluster 'ivc'",
    )


def test_handle_and_options_round_trip(state: Path) -> None:
    assert load_handle("kind") is None
    options = ClusterOptions.parse("kind", {"cluster_name": "ivc2", "feature_gates": "Foo=true"})
    path = save(kind_handle(), options)
    assert path == handle_path("kind") == state / "kind" / "handle.json"
    assert path.stat().st_mode & 0o077 == 0  # may hold registry credentials
    assert load_handle("kind") == kind_handle()
    assert load_options("kind") == options


def test_restart_commands_cross_to_workers_in_the_handle() -> None:
    access = NodeAccess(command=("docker", "exec", "{node}"), restart={"kubelet": ("systemctl", "restart", "kubelet")})
    handle = replace(kind_handle(), node_access=access)
    assert ClusterHandle.from_json(handle.to_json()).node_access.restart == {
        "kubelet": ("systemctl", "restart", "kubelet")
    }
    assert access.on("ivc-worker", *access.restart["kubelet"]) == [
        "docker", "exec", "ivc-worker", "systemctl", "restart", "kubelet"
    ]  # fmt: skip


def test_node_command_places_the_node_and_the_command() -> None:
    appended = ClusterOptions.parse("existing", {"node_command": "docker exec {node}"}).node_command
    assert NodeAccess(command=appended).on("n1", "crictl", "pods", "--name", "^p$") == [
        "docker", "exec", "n1", "crictl", "pods", "--name", "^p$"
    ]  # fmt: skip
    quoted = ClusterOptions.parse("existing", {"node_command": "ssh -o BatchMode=yes root@{node} {command}"})
    restart = systemd_node_access(quoted.node_command, restarts=True).restart["runtime"]
    argv = NodeAccess(command=quoted.node_command).on("n1", *restart)
    assert argv[:4] == ["ssh", "-o", "BatchMode=yes", "root@n1"] and len(argv) == 5
    assert shlex.split(argv[4]) == list(restart)  # the remote shell gets back exactly the argv
    assert systemd_node_access(quoted.node_command, restarts=False).restart == {}


@pytest.mark.parametrize(
    ("given", "needle"),
    [
        ({"node_command": "ssh root@node"}, "does not name the node: put {node} where the node's name goes"),
        ({"node_command": "ssh '{node}"}, "does not parse as a shell command: No closing quotation"),
        ({"node_command": "x {node} {command} {command}"}, "names {command} more than once"),
        ({"allow_node_restarts": "on"}, "--allow-node-restarts restarts components on the nodes: it needs --node-c"),
    ],
)
def test_node_access_options_refuse_in_one_line(given: dict[str, str], needle: str) -> None:
    with pytest.raises(ClusterError, match=re.escape(needle)):
        ClusterOptions.parse("existing", given)
    with pytest.raises(ClusterError, match="--cluster=kind does not take --node-command"):
        ClusterOptions.parse("kind", {"node_command": "docker exec {node}"})


def test_allow_node_restarts_is_a_switch(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "--provider", "existing", "--help")
    assert code == 0 and re.search(r"^ +--allow-node-restarts$", out, re.M)  # no metavar: it takes no value
    options = ClusterOptions.parse("existing", {"node_command": "docker exec {node}", "allow_node_restarts": "on"})
    assert options.allow_node_restarts is True
    assert ClusterOptions.from_json(options.to_json()) == options


def test_corrupt_handle_is_one_line(state: Path) -> None:
    handle_path("kind").parent.mkdir(parents=True)
    handle_path("kind").write_text("{not json")
    with pytest.raises(ClusterError, match=r"unreadable .*delete it and run `up` again"):
        load_handle("kind")


def test_env_prints_the_providers_exports_with_the_saved_options(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    save(kind_handle(), ClusterOptions.parse("kind", {"cluster_name": "ivc2"}))
    told: list[ClusterOptions] = []

    class Fake:
        name = "kind"

        def __init__(self, options: ClusterOptions) -> None:
            told.append(options)

        def env(self) -> dict[str, str]:
            return kind_handle().exports()

    monkeypatch.setattr(cli, "make_provider", Fake)
    code, out, _ = run_cli(capsys, "env")
    assert told[0].cluster_name == "ivc2"  # `env` needs no flags repeated
    assert code == 0
    assert "export KUBECONFIG='/var/lib/ivc/kind/ivc/kube config'\n" in out
    assert "export IVC_REGISTRY=localhost:5001\n" in out
    assert all(line.startswith(("#", "export ")) for line in out.splitlines())


def test_up_saves_the_handle_and_prints_summary_and_exports(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    class Fake:
        name = "kind"

        def up(self) -> ClusterHandle:
            return kind_handle()

    seen: list[ClusterOptions] = []

    def fake_make_provider(options: ClusterOptions) -> Fake:
        seen.append(options)
        return Fake()

    monkeypatch.setattr(cli, "make_provider", fake_make_provider)
    code, out, _ = run_cli(capsys, "up", "--cluster-name", "ivc2", "--k8s-version", "1.35.4")
    assert code == 0
    assert (seen[0].provider, seen[0].cluster_name, seen[0].k8s_version) == ("kind", "ivc2", "v1.35.4")
    assert "# kind cluster is up: kind cluster 'ivc'" in out and "export IVC_REGISTRY=localhost:5001" in out
    assert load_handle("kind") == kind_handle()


def test_down_of_an_existing_cluster_only_forgets_it(capsys: pytest.CaptureFixture[str]) -> None:
    save(
        ClusterHandle(
            provider="existing", kubeconfig="/x", context="a", registry=RegistryEndpoint(push="r:5000", pull="r:5000")
        ),
        ClusterOptions(provider="existing"),
    )
    code, _, _ = run_cli(capsys, "down", "--provider", "existing")
    assert code == 0 and load_handle("existing") is None


# -- make_provider and option parsing --------------------------------------------------------------------


def test_options_are_parsed_once_and_refused_where_they_do_not_belong() -> None:
    with pytest.raises(ClusterError, match="unknown cluster provider 'minikube': choose one of kind, existing, local"):
        ClusterOptions.parse("minikube", {})
    with pytest.raises(ClusterError, match="--cluster=kind does not take --kubeconfig, --registry: drop them"):
        ClusterOptions.parse("kind", {"kubeconfig": "/x", "registry": "r:1"})
    with pytest.raises(ClusterError, match=r"--k8s-version 'latest' is not a release like v1\.36\.3"):
        ClusterOptions.parse("local", {"k8s_version": "latest"})
    options = ClusterOptions.parse("local", {"k8s_version": "1.35.4", "admission_plugins": "A, B,A"})
    assert (options.k8s_version, options.admission_plugins) == ("v1.35.4", ("A", "B"))
    assert isinstance(make_provider(ClusterOptions.parse("existing", {"registry": "r:5000"})), ExistingProvider)


def test_locked_gate_is_refused_by_every_provider_before_building() -> None:
    for provider in ("kind", "local"):
        options = ClusterOptions.parse(provider, {"k8s_version": "v1.36.3", "feature_gates": "ImageVolume=false"})
        with pytest.raises(ClusterError, match=r"ImageVolume is GA and locked on in Kubernetes v1\.36\.3"):
            make_provider(options)


def test_feature_gate_syntax() -> None:
    assert parse_feature_gates("ImageVolume=false, Foo=TRUE") == {"ImageVolume": False, "Foo": True}
    with pytest.raises(ClusterError):
        parse_feature_gates("ImageVolume")


def test_pull_secret_credentials(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text('{"auths": {"https://reg.example:5000": {"auth": "dXNlcjpwYTpzcw=="}}}')  # user:pa:ss
    assert credentials_for(str(config), "reg.example:5000") == ("user", "pa:ss")
    with pytest.raises(ClusterError, match="no credentials for other:5000"):
        credentials_for(str(config), "other:5000")


# -- the happy path against a stand-in API server + registry (plain HTTP on localhost) ------------------


@pytest.fixture
def fake_cluster() -> Iterator[str]:
    """Answers /version like an apiserver and /v2/ like a registry; enough for ExistingProvider.up()."""
    version = {
        "major": "1",
        "minor": "36",
        "gitVersion": "v1.36.1",
        "gitCommit": "0",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.26",
        "compiler": "gc",
        "platform": "linux/amd64",
    }

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.rstrip("/") or "/"
            body = json.dumps(version if path == "/version" else {}).encode()
            self.send_response(200 if path in ("/version", "/v2") else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_existing_up_saves_a_handle_and_env_reads_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, fake_cluster: str
) -> None:
    kubeconfig = write_kubeconfig(tmp_path / "kc", server=f"http://{fake_cluster}")
    code, out, err = run_cli(
        capsys,
        "up",
        "--provider",
        "existing",
        "--kubeconfig",
        str(kubeconfig),
        "--context",
        "b",
        "--registry",
        fake_cluster,
        "--registry-pull",
        "registry.internal:5000",
    )
    assert code == 0, err
    handle = load_handle("existing")
    assert handle is not None
    assert (handle.kubeconfig, handle.context, handle.created_by_run) == (str(kubeconfig), "b", False)
    assert handle.registry == RegistryEndpoint(push=fake_cluster, pull="registry.internal:5000")
    assert "Kubernetes v1.36.1" in handle.description
    assert "export IVC_REGISTRY=registry.internal:5000" in out
    code, out, _ = run_cli(capsys, "env", "--provider", "existing")
    assert code == 0 and f"export KUBECONFIG={kubeconfig}" in out


def test_existing_provider_creates_nothing(tmp_path: Path, fake_cluster: str) -> None:
    provider = ExistingProvider(
        ClusterOptions(
            provider="existing",
            kubeconfig=str(write_kubeconfig(tmp_path / "kc", server=f"http://{fake_cluster}")),
            registry=fake_cluster,
        )
    )
    assert provider.up().created_by_run is False
    assert provider.running_handle() == provider.up()  # what the pytest plugin asks first
    assert "reachable at" in provider.status()
    provider.down()  # a no-op by contract


def test_unreachable_registry(tmp_path: Path, fake_cluster: str) -> None:
    registry = f"127.0.0.1:{closed_port()}"
    provider = ExistingProvider(
        ClusterOptions(
            provider="existing",
            kubeconfig=str(write_kubeconfig(tmp_path / "kc", server=f"http://{fake_cluster}")),
            registry=registry,
        )
    )
    with pytest.raises(ClusterError, match=f"registry {registry} is unreachable from this machine"):
        provider.up()
