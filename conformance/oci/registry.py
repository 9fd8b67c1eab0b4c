"""Push built images to an OCI distribution registry, through oras-py's low-level calls.

oras-py (PyPI `oras`) does the HTTP work: blob existence checks, monolithic uploads and the
401 → Basic/Bearer dance. Where it would get things wrong for us we step around it, and say so:

* `upload_blob` only reads from a path, so blobs are staged in a temporary directory.
* `upload_manifest` re-serialises the manifest with `requests`' `json=` (other key order and
  separators), which would change the digest, and always sends the OCI manifest media type.
  The manifest bytes are therefore PUT verbatim through oras' own `do_request` (same session
  and auth), with the manifest's own media type.
* `login()` falls back to writing ~/.docker/config.json; credentials are instead handed to the
  auth backend in memory only.
* oras-py sends no timeout and retries every exception five times with sleeps adding up to about
  two minutes; a timeout is added to its session and the retries are shortened.
* Its "token" backend cannot answer a `Basic` challenge (htpasswd registries), so the backend
  is chosen from the registry's own `WWW-Authenticate` answer to `GET /v2/`.
* Its "token" backend keeps re-sending the first token it got (scoped for pull by the blob HEAD)
  when a push needs a wider scope; the token is dropped and fetched anew on such a 401.
* Its "basic" backend sends credentials only after a 401, i.e. every blob twice; they are sent
  up front instead.
"""

from __future__ import annotations

import base64
import errno
import functools
import re
import socket
import ssl
import tempfile
from http.cookiejar import DefaultCookiePolicy
from pathlib import Path
from typing import TYPE_CHECKING, Any

# oras.decorator and oras.container are used through these: importing oras.decorator first
# hits a circular import inside oras-py.
import oras.auth
import oras.provider
import requests

from conformance.oci.layout import BuiltImage

if TYPE_CHECKING:
    from collections.abc import Callable

    from conformance.oci.endpoint import RegistryEndpoint

MANIFEST_ACCEPT = (
    "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, "
    "application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json"
)
START_HINT = "start it with `python -m conformance.cluster up --provider local` or pass --registry HOST:PORT"

# distribution/reference grammar: lowercase path components, and the tag syntax.
_REPOSITORY_RE = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_REFERENCE_RE = re.compile(rf"{_TAG_RE.pattern}|^sha256:[0-9a-f]{{64}}$")


class RegistryError(Exception):
    """The registry answered, but refused or failed an operation. One line, no credentials."""


class RegistryUnavailable(RegistryError):
    """The registry cannot be used at all (unreachable, TLS, credentials); the message says what to do."""


class _TimeoutSession(requests.Session):
    """A session with a default timeout: oras-py never passes one, and a hung registry must not hang a run."""

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self._timeout = timeout
        # As oras-py does: ignore cookies, which some registries use to detect browsers.
        self.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self._timeout)
        return super().request(method, url, *args, **kwargs)


class _AuthenticationRejected(oras.auth.AuthenticationException):
    """The registry or its token service refused our credentials (or anonymous access)."""


# oras-py's request function without its retry decorator, so that ours can wrap it.
_oras_do_request = getattr(oras.provider.Registry.do_request, "__wrapped__", oras.provider.Registry.do_request)


class _OrasRegistry(oras.provider.Registry):
    """oras-py's Registry with its `do_request`, which all its calls go through, corrected (see module doc)."""

    def __init__(self, *args: Any, preemptive_headers: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.preemptive_headers = dict(preemptive_headers or {})

    # Two quick retries (sleeps of 2 s and 4 s) instead of oras' five (≈2 min in total): enough for
    # a registry restarting, short enough that refused credentials surface at once.
    @oras.decorator.retry(attempts=2, timeout=1)
    def do_request(
        self,
        url: str,
        method: str = "GET",
        data: dict[str, Any] | bytes | None = None,
        headers: dict[str, str] | None = None,
        json: dict[str, Any] | None = None,
        stream: bool = False,
    ) -> requests.Response:
        # Basic credentials go with every request: oras would first take a 401 and send each
        # blob twice. A copy, too: oras passes its shared self.headers here and would mutate it.
        try:
            sent = {**self.preemptive_headers, **(headers or {})}
            response = _oras_do_request(self, url, method, data, sent, json, stream)
            if response.status_code == 401 and isinstance(self.auth, oras.auth.TokenAuth) and self.auth.token:
                # oras keeps re-sending a token minted for the scope first asked for (pull, from the
                # HEAD that checks a blob) when the registry now wants push; drop it to get a new one.
                self.auth.token = None
                sent = {**self.preemptive_headers, **(headers or {})}
                response = _oras_do_request(self, url, method, data, sent, json, stream)
        except ValueError as exc:
            # The only ValueError oras' request function raises: no token could be obtained.
            # As an AuthenticationException it is not retried (by oras' own decorator) for seconds.
            raise _AuthenticationRejected(str(exc)) from None
        return response


class RegistryClient:
    """Pushes `BuiltImage`s to one registry, and reads back what it holds (for tests and diagnostics)."""

    def __init__(self, endpoint: RegistryEndpoint, *, timeout: float = 30.0) -> None:
        host = endpoint.push
        if not host or "/" in host or "://" in host:
            raise ValueError(f"registry endpoint push must be HOST:PORT without scheme or path, got {host!r}")
        self._endpoint = endpoint
        self._timeout = timeout
        self._scheme = "http" if endpoint.ca_file is None else "https"
        self._verify: bool | str = endpoint.ca_file or True
        self._registry: _OrasRegistry | None = None

    def __repr__(self) -> str:  # RegistryEndpoint's repr already masks the password
        return f"RegistryClient({self._endpoint!r})"

    @property
    def endpoint(self) -> RegistryEndpoint:
        return self._endpoint

    # ---------------------------------------------------------------------------------------
    # public operations

    def ping(self) -> None:
        """GET /v2/ and, if challenged, authenticate; raises RegistryUnavailable with one actionable line."""
        host = self._endpoint.push
        ca_file = self._endpoint.ca_file
        if ca_file is not None and not Path(ca_file).is_file():
            raise RegistryUnavailable(
                f"registry {host}: CA file {ca_file} does not exist: check the registry's CA path"
            )
        url = f"{self._base()}/v2/"
        probe = _TimeoutSession(min(self._timeout, 10.0))
        try:
            # A bare session, not oras' retrying one: "not running" must be reported at once.
            response = probe.get(url, verify=self._verify)
        except requests.exceptions.RequestException as exc:
            raise self._unreachable(exc) from None
        finally:
            probe.close()

        if response.status_code == 200:
            self._registry = self._make_registry("token")  # anonymous; harmless when never challenged
            return
        if response.status_code == 401:
            self._registry = self._authenticated_registry(response)
            return
        if response.status_code == 400 and "HTTPS" in response.text:
            raise RegistryUnavailable(
                f"registry {host} speaks HTTPS, but no CA file is configured: pass the CA that signed its certificate"
            )
        raise RegistryUnavailable(
            f"registry {host} answered GET /v2/ with HTTP {response.status_code}: "
            "is this an OCI distribution registry? check --registry HOST:PORT"
        )

    def push(self, image: BuiltImage, repository: str, tag: str) -> str:
        """Upload missing blobs (HEAD first), then PUT the manifest bytes verbatim; returns the manifest digest.
        An index's manifests go first, by digest: a registry refuses an index naming manifests it lacks."""
        _check_repository(repository)
        _check_reference(tag, "tag")
        if self._resolve(repository, tag)[1] == image.manifest_digest:
            return image.manifest_digest  # stored already: a registry keeps every blob a manifest names
        for child in image.children:
            self.push(child, repository, child.manifest_digest)
        registry = self._ready()
        host = self._endpoint.push
        container = oras.container.Container(f"{host}/{repository}")  # blob uploads name the repository only
        with tempfile.TemporaryDirectory(prefix="ivc-push-") as scratch:
            own_blobs = {} if image.children else image.blobs  # an index's blobs came with its manifests
            for digest, data in own_blobs.items():
                staged = Path(scratch) / digest.replace(":", "-")
                staged.write_bytes(data)
                # The registry stores blobs untyped; the media type lives in the manifest only.
                descriptor = {"mediaType": "application/octet-stream", "digest": digest, "size": len(data)}
                response = self._call(
                    functools.partial(registry.upload_blob, str(staged), container, descriptor),
                    f"uploading blob {digest} to {repository}",
                )
                if response.status_code not in (200, 201, 202):
                    raise RegistryError(
                        f"registry {host} refused blob {digest} for {repository}: {_describe(response)}"
                    )
        url = f"{self._base()}/v2/{repository}/manifests/{tag}"
        response = self._call(
            lambda: registry.do_request(url, "PUT", data=image.manifest, headers={"Content-Type": image.media_type}),
            f"putting manifest {repository}:{tag}",
        )
        if response.status_code not in (200, 201):
            raise RegistryError(f"registry {host} refused manifest {repository}:{tag}: {_describe(response)}")
        stored = response.headers.get("Docker-Content-Digest")
        if stored and stored != image.manifest_digest:
            raise RegistryError(
                f"registry {host} stored {repository}:{tag} as {stored}, not {image.manifest_digest}: "
                "it rewrote the manifest, so digests in reports would not match what nodes pull"
            )
        return image.manifest_digest

    def delete_tag(self, repository: str, tag: str) -> None:
        """Delete the manifest `tag` points to (and so every tag sharing it); a missing tag is not an error."""
        _check_repository(repository)
        _check_reference(tag, "tag")
        registry = self._ready()
        host = self._endpoint.push
        head, digest = self._resolve(repository, tag)
        if head.status_code == 404:
            return
        if head.status_code != 200 or not digest:
            raise RegistryError(f"registry {host} cannot resolve {repository}:{tag} for deletion: {_describe(head)}")
        response = self._call(
            lambda: registry.do_request(f"{self._base()}/v2/{repository}/manifests/{digest}", "DELETE"),
            f"deleting {repository}@{digest}",
        )
        if response.status_code == 405:
            raise RegistryError(f"registry {host} has deletion disabled: set storage.delete.enabled: true")
        if response.status_code not in (200, 202, 404):
            raise RegistryError(f"registry {host} refused to delete {repository}@{digest}: {_describe(response)}")

    def _resolve(self, repository: str, reference: str) -> tuple[requests.Response, str | None]:
        """HEAD of the manifest `reference` names, and the digest the registry stores it under (None if absent)."""
        registry = self._ready()
        head = self._call(
            lambda: registry.do_request(
                f"{self._base()}/v2/{repository}/manifests/{reference}", "HEAD", headers={"Accept": MANIFEST_ACCEPT}
            ),
            f"resolving {repository}:{reference}",
        )
        return head, head.headers.get("Docker-Content-Digest") if head.status_code == 200 else None

    def fetch_manifest(self, repository: str, reference: str) -> bytes:
        """The manifest bytes exactly as stored, by tag or digest (their sha256 is the manifest digest)."""
        _check_repository(repository)
        _check_reference(reference, "reference")
        registry = self._ready()
        response = self._call(
            lambda: registry.do_request(
                f"{self._base()}/v2/{repository}/manifests/{reference}", "GET", headers={"Accept": MANIFEST_ACCEPT}
            ),
            f"fetching manifest {repository}:{reference}",
        )
        if response.status_code != 200:
            raise RegistryError(
                f"registry {self._endpoint.push} has no manifest {repository}:{reference}: {_describe(response)}"
            )
        return response.content

    def fetch_blob(self, repository: str, digest: str) -> bytes:
        """One blob's bytes, e.g. to inspect a config or layer that a node reported."""
        _check_repository(repository)
        if not digest.startswith("sha256:"):
            raise ValueError(f"blob digest must look like sha256:<hex>, got {digest!r}")
        registry = self._ready()
        response = self._call(
            lambda: registry.do_request(f"{self._base()}/v2/{repository}/blobs/{digest}", "GET"),
            f"fetching blob {digest}",
        )
        if response.status_code != 200:
            raise RegistryError(
                f"registry {self._endpoint.push} has no blob {digest} in {repository}: {_describe(response)}"
            )
        return response.content

    # ---------------------------------------------------------------------------------------
    # internals

    def _base(self) -> str:
        return f"{self._scheme}://{self._endpoint.push}"

    def _ready(self) -> _OrasRegistry:
        if self._registry is None:
            self.ping()
        assert self._registry is not None
        return self._registry

    def _make_registry(self, auth_backend: str) -> _OrasRegistry:
        username, password = self._endpoint.username, self._endpoint.password or ""
        preemptive = {}
        if username and auth_backend == "basic":
            token = base64.b64encode(f"{username}:{password}".encode()).decode()
            preemptive["Authorization"] = f"Basic {token}"
        registry = _OrasRegistry(
            hostname=self._endpoint.push,
            insecure=self._endpoint.ca_file is None,
            tls_verify=self._verify,
            auth_backend=auth_backend,
            preemptive_headers=preemptive,
        )
        session = _TimeoutSession(self._timeout)
        registry.session.close()
        registry.session = session
        registry.auth.session = session
        if username:
            # In memory only: oras' login() would persist them to ~/.docker/config.json.
            registry.auth.set_basic_auth(username, password)
        return registry

    def _authenticated_registry(self, challenge: requests.Response) -> _OrasRegistry:
        host = self._endpoint.push
        scheme = challenge.headers.get("WWW-Authenticate", "").split(" ", 1)[0].lower()
        if scheme not in ("basic", "bearer"):
            raise RegistryUnavailable(f"registry {host} asks for an unsupported authentication scheme {scheme!r}")
        if not self._endpoint.username and scheme == "basic":
            raise RegistryUnavailable(f"registry {host} requires a username and password, and none are configured")
        registry = self._make_registry("basic" if scheme == "basic" else "token")
        try:
            response = registry.do_request(f"{self._base()}/v2/", "GET")
        except requests.exceptions.RequestException as exc:
            raise self._unreachable(exc) from None
        except _AuthenticationRejected:
            response = None
        if response is None or response.status_code != 200:
            who = "the configured credentials" if self._endpoint.username else "anonymous access"
            raise RegistryUnavailable(f"registry {host} rejected {who}: check the registry's username and password")
        return registry

    def _unreachable(self, exc: requests.exceptions.RequestException) -> RegistryUnavailable:
        host = self._endpoint.push
        if isinstance(exc, requests.exceptions.SSLError):  # only with a CA file: otherwise we speak plain HTTP
            return RegistryUnavailable(
                f"registry {host} failed TLS verification against {self._endpoint.ca_file} ({_reason(exc)}): "
                "pass the CA that signed its certificate, or no CA file if it serves plain HTTP"
            )
        return RegistryUnavailable(f"registry {host} is not reachable ({_reason(exc)}): {START_HINT}")

    def _call(self, operation: Callable[[], requests.Response], what: str) -> requests.Response:
        """Run one oras-py operation, turning transport failures into one-line registry errors."""
        try:
            return operation()
        except requests.exceptions.RequestException as exc:
            raise self._unreachable(exc) from None
        except _AuthenticationRejected:
            raise RegistryUnavailable(
                f"registry {self._endpoint.push} refused the credentials while {what}: check they may push there"
            ) from None
        except ValueError as exc:  # oras-py reports protocol trouble as ValueError
            raise RegistryError(f"registry {self._endpoint.push}: {what} failed: {_one_line(exc)}") from None


def _check_repository(repository: str) -> None:
    if not isinstance(repository, str) or not _REPOSITORY_RE.match(repository):
        raise ValueError(f"repository {repository!r} is not a valid name (lowercase path like 'ivc/shell')")


def _check_reference(reference: str, what: str) -> None:
    if not isinstance(reference, str) or not _REFERENCE_RE.match(reference):
        raise ValueError(f"{what} {reference!r} is neither a valid tag nor a sha256 digest")


def _one_line(value: object, limit: int = 240) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _describe(response: requests.Response) -> str:
    """HTTP status plus the registry's own error codes (distribution's {"errors": [...]} body)."""
    detail = ""
    try:
        body = response.json()
    except ValueError:
        body = None
    errors = body.get("errors") if isinstance(body, dict) else None
    if isinstance(errors, list):
        detail = "; ".join(f"{e.get('code', '?')}: {e.get('message', '')}" for e in errors if isinstance(e, dict))
    return _one_line(f"HTTP {response.status_code}" + (f" ({detail})" if detail else ""))


def _reason(exc: BaseException) -> str:
    """The root cause of a transport error in a few words: requests nests it several levels deep."""
    stack: list[BaseException] = [exc]
    seen: set[int] = set()
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ConnectionRefusedError):
            return "connection refused"
        if isinstance(current, ssl.SSLCertVerificationError):
            return f"certificate verify failed: {current.verify_message}"
        if isinstance(current, ssl.SSLError) and current.reason:
            return f"TLS error: {current.reason}"
        if isinstance(current, socket.gaierror):
            return "host name does not resolve"
        if isinstance(current, TimeoutError | requests.exceptions.Timeout):
            return "timed out"
        if isinstance(current, OSError) and current.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
            return "no route to host"
        linked = (current.__cause__, current.__context__, getattr(current, "reason", None), *current.args)
        stack.extend(item for item in linked if isinstance(item, BaseException))
    return _one_line(exc, 160)
