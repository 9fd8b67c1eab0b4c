"""The suite's own registries, whoever runs them: a plain one and a TLS + htpasswd one.

Material lives in one directory per cluster (`RegistryFiles`): the auth registry's CA and serving
certificate (with the names its clients dial), an htpasswd with a fresh random password, and the
distribution config files. The local provider runs Debian's docker-registry as host processes; the
kind provider runs the same binary in containers built from the same package.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from conformance.infra.files import write_atomic, write_private
from conformance.infra.process import run

USER = "ivc"


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
