"""The suite's own registries, whoever runs them: a plain one and a TLS + htpasswd one.

Material lives in one directory per cluster (`RegistryFiles`): the auth registry's CA and serving
certificate (with the names its clients dial), an htpasswd with a fresh random password, and the
distribution config files. The local provider runs Debian's docker-registry as host processes; the
kind provider runs the same binary in containers built from the same package.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from conformance.cluster.contract import RegistryEndpoint
from conformance.cluster.options import ClusterOptions
from conformance.infra.errors import ClusterError
from conformance.infra.files import write_atomic, write_private
from conformance.infra.process import run

USER = "ivc"
REGISTRY_REQUIRED = (
    "--registry HOST:PORT is required with --cluster=existing: the suite pushes its own test artifacts there "
    "(the cluster must be able to pull from it)"
)


@dataclass(frozen=True)
class RegistryFiles:
    directory: Path

    @property
    def ca(self) -> Path:
        return self.directory / "registry-ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.directory / "registry-ca.key"

    @property
    def certificate(self) -> Path:
        return self.directory / "registry.crt"

    @property
    def key(self) -> Path:
        return self.directory / "registry.key"

    @property
    def htpasswd(self) -> Path:
        return self.directory / "registry.htpasswd"

    @property
    def password_file(self) -> Path:
        return self.directory / "registry-password"

    def password(self) -> str | None:
        try:
            return self.password_file.read_text().strip() or None
        except OSError:
            return None


def create_tls(files: RegistryFiles, names: Sequence[str]) -> None:
    """A CA of its own and a serving certificate for `names` (IP addresses become IP SANs: Go's TLS
    insists on them)."""
    files.directory.mkdir(parents=True, exist_ok=True)
    run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "3650",
            "-keyout", str(files.ca_key), "-out", str(files.ca), "-subj", "/CN=ivc registry CA",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        ],
        what="creating the auth registry's CA",
    )  # fmt: skip
    sans = ",".join(f"IP:{n}" if n.replace(".", "").isdigit() else f"DNS:{n}" for n in names)
    with tempfile.TemporaryDirectory() as tmp:
        csr, ext = Path(tmp) / "registry.csr", Path(tmp) / "ext.cnf"
        ext.write_text(
            "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
            f"extendedKeyUsage=serverAuth\nsubjectAltName={sans}\n"
        )
        run(
            [
                "openssl",
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                str(files.key),
                "-out",
                str(csr),
                "-subj",
                f"/CN={names[0]}",
            ],
            what="creating the auth registry's key",
        )
        run(
            [
                "openssl", "x509", "-req", "-sha256", "-days", "3650", "-in", str(csr),
                "-CA", str(files.ca), "-CAkey", str(files.ca_key), "-set_serial", "0x" + secrets.token_hex(16),
                "-out", str(files.certificate), "-extfile", str(ext),
            ],
            what="signing the auth registry's certificate",
        )  # fmt: skip
    for path in (files.ca_key, files.key):
        os.chmod(path, 0o600)


def create_htpasswd(files: RegistryFiles) -> str:
    """A fresh random password per cluster, bcrypt-hashed (the registry accepts only bcrypt)."""
    password = secrets.token_urlsafe(18)
    write_private(files.password_file, password + "\n")
    # -i reads the password from stdin, so it never shows up in a process listing.
    run(
        ["htpasswd", "-B", "-i", "-c", str(files.htpasswd), USER],
        what="htpasswd -B (apache2-utils)",
        input=password + "\n",
    )
    os.chmod(files.htpasswd, 0o600)
    return password


def render_config(*, addr: str, root: Path, tls: tuple[Path, Path] | None = None, htpasswd: Path | None = None) -> str:
    """A distribution (docker-registry 2.8) config: deletes allowed, loopback or container address."""
    http: dict[str, object] = {
        "addr": addr,
        "secret": secrets.token_hex(16),
        "headers": {"X-Content-Type-Options": ["nosniff"]},
    }
    if tls:
        http["tls"] = {"certificate": str(tls[0]), "key": str(tls[1])}
    config: dict[str, object] = {
        "version": 0.1,
        "log": {"level": "info", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(root)}, "delete": {"enabled": True}},
        "http": http,
    }
    if htpasswd:
        config["auth"] = {"htpasswd": {"realm": "ivc-registry", "path": str(htpasswd)}}
    return yaml.safe_dump(config, sort_keys=False)


def write_config(path: Path, **kwargs: object) -> Path:
    """The config, owner-readable only when it points at credentials."""
    text = render_config(**kwargs)  # type: ignore[arg-type]
    return write_private(path, text) if kwargs.get("htpasswd") else write_atomic(path, text)


# -- registries a user names (existing clusters, --push-artifacts) -----------------------------------
def validate_registry(registry: str, flag: str = "--registry") -> str:
    """HOST[:PORT], as it appears in image references: no scheme, no path."""
    value = registry.strip()
    if "://" in value or "/" in value or not re.fullmatch(r"[A-Za-z0-9.\-]+(:\d+)?|\[[0-9A-Fa-f:]+\](:\d+)?", value):
        raise ClusterError(f"{flag} {registry!r} is not HOST:PORT (no scheme or path), e.g. registry.example:5000")
    return value


def credentials_for(pull_secret: str, registry: str) -> tuple[str, str]:
    """Username and password for `registry` from a docker config.json (the `.dockerconfigjson` of a pull secret)."""
    path = Path(pull_secret).expanduser()
    try:
        auths = json.loads(path.read_text()).get("auths", {})
    except FileNotFoundError:
        raise ClusterError(
            f"--pull-secret {path} does not exist: pass a docker config.json with an entry for {registry}"
        ) from None
    except (OSError, ValueError, AttributeError) as exc:
        raise ClusterError(f"--pull-secret {path} is not a docker config.json ({exc})") from exc
    for key, entry in auths.items():
        host = re.sub(r"^https?://", "", key).split("/")[0]
        if host != registry or not isinstance(entry, dict):
            continue
        if entry.get("username") and entry.get("password"):
            return entry["username"], entry["password"]
        if entry.get("auth"):
            user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
            return user, password
    raise ClusterError(
        f"--pull-secret {path} has no credentials for {registry} (entries: {', '.join(auths) or 'none'}); "
        "credential helpers are not read: use `docker login` output with inline auths"
    )


def registries_in(pull_secret: str) -> set[str]:
    """The registry hosts a docker config.json has entries for (empty when unreadable: `credentials_for` says why)."""
    try:
        auths = json.loads(Path(pull_secret).expanduser().read_text()).get("auths", {})
    except (OSError, ValueError, AttributeError):
        return set()
    return {re.sub(r"^https?://", "", key).split("/")[0] for key in auths}


def named_registry(options: ClusterOptions) -> RegistryEndpoint:
    """The registry the options name (validated; credentials from --pull-secret when it has an entry for
    it), without touching a cluster."""
    if not options.registry:
        raise ClusterError(REGISTRY_REQUIRED)
    push = validate_registry(options.registry)
    pull = validate_registry(options.registry_pull, "--registry-pull") if options.registry_pull else push
    username = password = None
    if options.pull_secret and push in registries_in(options.pull_secret):
        username, password = credentials_for(options.pull_secret, push)
    ca_file = None
    if options.registry_ca:
        ca_path = Path(options.registry_ca).expanduser()
        if not ca_path.is_file():
            raise ClusterError(f"--registry-ca {ca_path} does not exist: pass the PEM file of the registry's CA")
        ca_file = str(ca_path)
    return RegistryEndpoint(push=push, pull=pull, username=username, password=password, ca_file=ca_file)


def named_auth_registry(options: ClusterOptions) -> RegistryEndpoint | None:
    """The registry that refuses anonymous pulls (--auth-registry, credentials from --pull-secret), or None."""
    if not options.auth_registry:
        if (
            options.pull_secret
            and options.registry
            and validate_registry(options.registry) not in registries_in(options.pull_secret)
        ):
            raise ClusterError(
                "--pull-secret holds the credentials of --auth-registry: pass --auth-registry HOST:PORT (a "
                "registry that refuses anonymous pulls) for the pull-secret tests"
            )
        return None
    if not options.pull_secret:
        raise ClusterError(f"--auth-registry {options.auth_registry} needs --pull-secret with its credentials")
    host = validate_registry(options.auth_registry, "--auth-registry")
    username, password = credentials_for(options.pull_secret, host)
    ca_file = str(Path(options.registry_ca).expanduser()) if options.registry_ca else None
    return RegistryEndpoint(push=host, pull=host, username=username, password=password, ca_file=ca_file)
