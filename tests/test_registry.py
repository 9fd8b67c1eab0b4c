"""Push to a real registry: Debian's `docker-registry` (CNCF distribution 2.8), run on 127.0.0.1.

The registry runs as a child process of the test session, never as a system service, on a free
port with its storage in tmp_path, and is terminated at the end of the module. Tests that need
it skip with a reason when the binary is absent (`apt-get install -y docker-registry`); the
error-path tests against a closed port always run.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.server
import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from conformance.oci import base_images
from conformance.oci.endpoint import RegistryEndpoint
from conformance.oci.layout import ArtifactSpec, File, ImageSpec, Symlink, build
from conformance.oci.registry import RegistryClient, RegistryError, RegistryUnavailable

REGISTRY_BINARY = "docker-registry"
USERNAME, PASSWORD = "ivc-user", "not-a-real-secret-7f3a"

SEED_V2 = ImageSpec(layers=((File("dir/file", b"1\n"), File("file", b"2\n")),))
SINGLEFILE = ArtifactSpec(files=(("artifact.txt", b"hello artifact\n"),))
SELF_SIGNED = ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@contextlib.contextmanager
def start_registry(workdir: Path, extra_config: str = "") -> Iterator[int]:
    """Run `docker-registry serve` on a free loopback port for the duration of the block."""
    binary = shutil.which(REGISTRY_BINARY)
    if binary is None:
        pytest.skip(f"`{REGISTRY_BINARY}` not installed (Debian: apt-get install -y docker-registry)")
    port = free_port()
    config = workdir / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: warn\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {workdir / 'storage'}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n" + extra_config
    )
    # REGISTRY_* variables override the file; keep the developer's environment out of it.
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
    log = (workdir / "registry.log").open("wb")
    proc = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 20
        while True:
            if proc.poll() is not None:
                output = (workdir / "registry.log").read_text()
                pytest.fail(f"{REGISTRY_BINARY} exited with {proc.returncode}:\n{output}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"{REGISTRY_BINARY} did not listen on 127.0.0.1:{port} within 20 s")
                time.sleep(0.1)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryEndpoint]:
    """A plain-HTTP registry with deletion enabled; `pull` differs from `push` as on kind."""
    with start_registry(tmp_path_factory.mktemp("registry")) as port:
        yield RegistryEndpoint(push=f"127.0.0.1:{port}", pull=f"kind-registry:{port}")


@pytest.fixture
def client(registry: RegistryEndpoint) -> RegistryClient:
    return RegistryClient(registry)


# --------------------------------------------------------------------------------------------
# pushing and reading back


@pytest.mark.parametrize("spec", [SEED_V2, SINGLEFILE], ids=["image", "artifact"])
def test_push_then_read_back_by_digest_and_tag(client: RegistryClient, spec: ImageSpec | ArtifactSpec) -> None:
    image = build(spec)
    repository = "ivc/roundtrip-" + ("image" if isinstance(spec, ImageSpec) else "artifact")
    digest = client.push(image, repository, "v1")
    assert digest == image.manifest_digest
    by_digest = client.fetch_manifest(repository, digest)
    by_tag = client.fetch_manifest(repository, "v1")
    assert by_digest == by_tag == image.manifest  # stored verbatim, so every digest in reports holds
    assert sha256(by_tag) == digest
    for blob_digest, data in image.blobs.items():
        assert client.fetch_blob(repository, blob_digest) == data


def test_artifact_keeps_artifact_type_and_titles(client: RegistryClient) -> None:
    spec = ArtifactSpec(files=(("subpath/2", b"2\n"), ("subpath/3", b"3\n")), layer_media_type="text/plain")
    digest = client.push(build(spec), "ivc/artifact", "subpath")
    manifest = json.loads(client.fetch_manifest("ivc/artifact", digest))
    assert manifest["artifactType"] == spec.artifact_type
    assert manifest["config"]["mediaType"] == "application/vnd.oci.empty.v1+json"
    assert [layer["annotations"]["org.opencontainers.image.title"] for layer in manifest["layers"]] == [
        "subpath/2",
        "subpath/3",
    ]


def test_push_is_idempotent_and_retag_moves_the_tag(client: RegistryClient) -> None:
    first = build(SEED_V2)
    assert client.push(first, "ivc/retag", "latest") == client.push(first, "ivc/retag", "latest")
    second = build(ImageSpec(layers=(*SEED_V2.layers, (Symlink("link", "file"),))))
    client.push(second, "ivc/retag", "latest")
    assert client.fetch_manifest("ivc/retag", "latest") == second.manifest
    assert client.fetch_manifest("ivc/retag", first.manifest_digest) == first.manifest  # still there by digest


def test_delete_tag(client: RegistryClient) -> None:
    client.push(build(ImageSpec(layers=((File("only-here", b"x"),),))), "ivc/deleted", "gone")
    client.delete_tag("ivc/deleted", "gone")
    with pytest.raises(RegistryError, match="has no manifest ivc/deleted:gone"):
        client.fetch_manifest("ivc/deleted", "gone")
    client.delete_tag("ivc/deleted", "gone")  # deleting again is a no-op


def test_invalid_names_are_rejected_before_any_request() -> None:
    client = RegistryClient(RegistryEndpoint(push=f"127.0.0.1:{free_port()}", pull="x:1"))
    with pytest.raises(ValueError, match="repository"):
        client.push(build(SEED_V2), "Upper/Case", "v1")
    with pytest.raises(ValueError, match="tag"):
        client.push(build(SEED_V2), "ivc/ok", "bad tag")


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not installed")
def test_push_base_images_returns_pull_references(
    client: RegistryClient, registry: RegistryEndpoint, tmp_path: Path
) -> None:
    refs = base_images.push_base_images(client, tmp_path, which=("pause",))
    assert refs == {"pause": f"{registry.pull}/ivc/pause:3.10.1"}
    manifest = json.loads(client.fetch_manifest(base_images.PAUSE_REPOSITORY, base_images.PAUSE_TAG))
    config = json.loads(client.fetch_blob(base_images.PAUSE_REPOSITORY, manifest["config"]["digest"]))
    assert config["config"]["Entrypoint"] == ["/pause"]


# --------------------------------------------------------------------------------------------
# unavailable registry (no binary needed)


def test_ping_closed_port_gives_one_actionable_line() -> None:
    port = free_port()  # nothing listens there once the probe socket is closed
    client = RegistryClient(RegistryEndpoint(push=f"127.0.0.1:{port}", pull=f"127.0.0.1:{port}"))
    started = time.monotonic()
    with pytest.raises(RegistryUnavailable) as caught:
        client.ping()
    message = str(caught.value)
    assert time.monotonic() - started < 5  # no retry loop on a refused connection
    assert "\n" not in message
    assert message.startswith(f"registry 127.0.0.1:{port} is not reachable (connection refused): start it with")
    assert "--registry HOST:PORT" in message


def test_push_to_closed_port_raises_unavailable_without_credentials() -> None:
    port = free_port()
    endpoint = RegistryEndpoint(push=f"127.0.0.1:{port}", pull="x:1", username=USERNAME, password=PASSWORD)
    client = RegistryClient(endpoint)
    with pytest.raises(RegistryUnavailable) as caught:
        client.push(build(SEED_V2), "ivc/x", "v1")
    assert PASSWORD not in str(caught.value) and PASSWORD not in repr(caught.value)
    assert PASSWORD not in repr(client)


# --------------------------------------------------------------------------------------------
# TLS + htpasswd registry, as the suite's pull-secret registry


def bcrypt_hash(password: str) -> str:
    """distribution only accepts bcrypt htpasswd entries; the lowest cost keeps each request fast."""
    try:
        import bcrypt

        return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
    except ImportError:
        pass
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import crypt  # stdlib until 3.12; glibc/libxcrypt provides bcrypt

        return crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16))
    except (ImportError, AttributeError):
        pytest.skip("neither the bcrypt package nor crypt with bcrypt support is available")


@pytest.fixture(scope="module")
def auth_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryEndpoint]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make the test certificate")
    workdir = tmp_path_factory.mktemp("auth-registry")
    cert, key = workdir / "cert.pem", workdir / "key.pem"
    subprocess.run(
        [
            *SELF_SIGNED,
            *("-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=ivc-test-registry"),
            *("-addext", "subjectAltName=IP:127.0.0.1", "-addext", "basicConstraints=critical,CA:TRUE"),
        ],
        check=True,
        capture_output=True,
    )
    htpasswd = workdir / "htpasswd"
    htpasswd.write_text(f"{USERNAME}:{bcrypt_hash(PASSWORD)}\n")
    extra = (
        f"  tls:\n    certificate: {cert}\n    key: {key}\n"
        f"auth:\n  htpasswd:\n    realm: ivc-test\n    path: {htpasswd}\n"
    )
    with start_registry(workdir, extra) as port:
        yield RegistryEndpoint(
            push=f"127.0.0.1:{port}", pull=f"127.0.0.1:{port}", username=USERNAME, password=PASSWORD, ca_file=str(cert)
        )


def with_(endpoint: RegistryEndpoint, **changes: str | None) -> RegistryEndpoint:
    fields = {"push": endpoint.push, "pull": endpoint.pull, "username": endpoint.username}
    fields |= {"password": endpoint.password, "ca_file": endpoint.ca_file}
    return RegistryEndpoint(**(fields | changes))


def test_authenticated_tls_push(auth_registry: RegistryEndpoint) -> None:
    client = RegistryClient(auth_registry)
    client.ping()
    image = build(SINGLEFILE)
    assert client.push(image, "ivc/private", "v1") == image.manifest_digest
    assert client.fetch_manifest("ivc/private", "v1") == image.manifest


def test_wrong_password_is_reported_without_it(auth_registry: RegistryEndpoint) -> None:
    wrong = "wrong-password-91c2"
    with pytest.raises(RegistryUnavailable, match="rejected the configured credentials") as caught:
        RegistryClient(with_(auth_registry, password=wrong)).ping()
    assert wrong not in str(caught.value) and PASSWORD not in str(caught.value)
    assert "\n" not in str(caught.value)


def test_missing_credentials_are_reported(auth_registry: RegistryEndpoint) -> None:
    with pytest.raises(RegistryUnavailable, match="requires a username and password"):
        RegistryClient(with_(auth_registry, username=None, password=None)).ping()


def test_missing_ca_file_is_reported(auth_registry: RegistryEndpoint, tmp_path: Path) -> None:
    with pytest.raises(RegistryUnavailable, match="does not exist"):
        RegistryClient(with_(auth_registry, ca_file=str(tmp_path / "absent.pem"))).ping()


def test_plain_http_against_tls_registry(auth_registry: RegistryEndpoint) -> None:
    with pytest.raises(RegistryUnavailable, match="speaks HTTPS") as caught:
        RegistryClient(with_(auth_registry, ca_file=None)).ping()
    assert "\n" not in str(caught.value)


def test_wrong_ca_is_reported(auth_registry: RegistryEndpoint, tmp_path: Path) -> None:
    other = tmp_path / "other.pem"
    subprocess.run(
        [*SELF_SIGNED, "-keyout", str(tmp_path / "k.pem"), "-out", str(other), "-days", "1", "-subj", "/CN=other"],
        check=True,
        capture_output=True,
    )
    with pytest.raises(RegistryUnavailable, match="failed TLS verification") as caught:
        RegistryClient(with_(auth_registry, ca_file=str(other))).ping()
    assert "\n" not in str(caught.value)


# --------------------------------------------------------------------------------------------
# Bearer-token registry (Harbor, Quay, …): a minimal fake, as distribution needs a JWT issuer


class FakeTokenRegistry(http.server.BaseHTTPRequestHandler):
    """Just enough of the distribution API and token flow to push, with per-scope tokens.

    Tokens carry their scope, so a request made with a pull-only token for a push is refused with
    a new challenge, as real registries do.
    """

    blobs: ClassVar[dict[str, bytes]] = {}
    manifests: ClassVar[dict[str, bytes]] = {}
    scopes_issued: ClassVar[list[str]] = []
    uploads = 0  # count of blob bodies received, to prove no blob is sent twice

    def log_message(self, format: str, *args: object) -> None:  # keep pytest output clean
        pass

    def _reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length", "0")))

    def _authorized(self, repository: str | None, actions: str) -> bool:
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Bearer tok|"):
            granted_repository, _, granted_actions = auth.removeprefix("Bearer tok|").rpartition(":")
            if repository is None or (
                granted_repository == f"repository:{repository}"
                and set(actions.split(",")) <= set(granted_actions.split(","))
            ):
                return True
        scope = f',scope="repository:{repository}:{actions}"' if repository else ""
        realm = f"http://127.0.0.1:{self.server.server_port}/token"
        self._body()
        self._reply(401, b"{}", {"WWW-Authenticate": f'Bearer realm="{realm}",service="fake"{scope}'})
        return False

    def _route(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/token":
            expected = base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode()
            if self.headers.get("Authorization") != f"Basic {expected}":
                return self._reply(401)
            scope = urllib.parse.parse_qs(url.query).get("scope", [""])[0]
            type(self).scopes_issued.append(scope)
            return self._reply(200, json.dumps({"token": f"tok|{scope}"}).encode())
        if url.path == "/v2/":
            if self._authorized(None, ""):
                self._reply(200, b"{}")
            return None
        match = re.fullmatch(r"/v2/(?P<repo>.+)/(?P<kind>blobs|manifests)/(?P<ref>.+)", url.path)
        if not match:
            return self._reply(404)
        repo, kind, ref = match["repo"], match["kind"], match["ref"]
        write = self.command in ("POST", "PUT", "PATCH", "DELETE")
        if not self._authorized(repo, "pull,push" if write else "pull"):
            return None
        store = self.blobs if kind == "blobs" else self.manifests
        if self.command == "POST":
            return self._reply(202, headers={"Location": f"/v2/{repo}/blobs/uploads/session"})
        if self.command == "PUT" and kind == "blobs":
            data = self._body()
            type(self).uploads += 1
            digest = urllib.parse.parse_qs(url.query)["digest"][0]
            assert sha256(data) == digest
            store[digest] = data
            return self._reply(201)
        if self.command == "PUT":
            data = self._body()
            store[ref] = store[sha256(data)] = data
            return self._reply(201, headers={"Docker-Content-Digest": sha256(data)})
        if ref in store:
            return self._reply(200, store[ref], {"Docker-Content-Digest": sha256(store[ref])})
        return self._reply(404)

    do_GET = do_HEAD = do_POST = do_PUT = _route


@pytest.fixture
def token_registry() -> Iterator[RegistryEndpoint]:
    FakeTokenRegistry.blobs, FakeTokenRegistry.manifests, FakeTokenRegistry.scopes_issued = {}, {}, []
    FakeTokenRegistry.uploads = 0
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeTokenRegistry)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        host = f"127.0.0.1:{server.server_port}"
        yield RegistryEndpoint(push=host, pull=host, username=USERNAME, password=PASSWORD)
    finally:
        server.shutdown()
        server.server_close()


def test_bearer_token_push_gets_a_push_scoped_token(token_registry: RegistryEndpoint) -> None:
    image = build(SEED_V2)
    client = RegistryClient(token_registry)
    assert client.push(image, "ivc/tokens", "v1") == image.manifest_digest
    assert client.fetch_manifest("ivc/tokens", "v1") == image.manifest
    assert "repository:ivc/tokens:pull,push" in FakeTokenRegistry.scopes_issued
    assert FakeTokenRegistry.uploads == len(image.blobs)


def test_bearer_token_wrong_password(token_registry: RegistryEndpoint) -> None:
    with pytest.raises(RegistryUnavailable, match="rejected the configured credentials"):
        RegistryClient(with_(token_registry, password="nope")).ping()
