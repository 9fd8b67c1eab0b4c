"""Attach to a cluster someone else runs: validate, never create or delete anything cluster-wide.

The suite pushes its own test artifacts, so a registry that this machine can push to and the
cluster can pull from is mandatory. Clients come from `infra.kube.Kube` with an explicit file
and context, never the process-global default config (tests may talk to several clusters).
"""

from __future__ import annotations

import os
import re
import shlex
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import ClassVar

import urllib3
import yaml
from kubernetes.config.config_exception import ConfigException

from conformance.cluster.contract import ClusterHandle, NodeAccess, RegistryEndpoint
from conformance.cluster.options import ClusterOptions
from conformance.cluster.probes import http_get
from conformance.cluster.registries import named_auth_registry, named_registry
from conformance.cluster.systemd_nodes import systemd_node_access
from conformance.infra.errors import ClusterError
from conformance.infra.kube import ApiException, Kube
from conformance.infra.process import last_line, run
from conformance.infra.progress import progress

CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 15.0


def resolve_kubeconfig(kubeconfig: str | None) -> str:
    """The kubeconfig path list to use: explicit, else $KUBECONFIG, else ~/.kube/config (kubectl's order)."""
    raw = kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
    paths = [str(Path(p).expanduser()) for p in raw.split(os.pathsep) if p]
    present = [p for p in paths if Path(p).is_file()]
    if not present:
        source = "--kubeconfig" if kubeconfig else ("$KUBECONFIG" if os.environ.get("KUBECONFIG") else "default")
        raise ClusterError(
            f"kubeconfig {os.pathsep.join(paths)} ({source}) does not exist: pass --kubeconfig PATH or set KUBECONFIG"
        )
    return os.pathsep.join(present)


def read_contexts(kubeconfig: str) -> tuple[list[str], str | None]:
    """Context names and current-context across a kubeconfig path list, merged as kubectl does.

    Read directly: the client's loader refuses a file without current-context, which is exactly
    the case where we want to list the choices.
    """
    names: list[str] = []
    current = None
    for path in kubeconfig.split(os.pathsep):
        try:
            document = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ClusterError(f"kubeconfig {path} is not readable YAML: {exc}") from exc
        if not isinstance(document, dict):
            raise ClusterError(f"kubeconfig {path} is not a kubeconfig (no mapping at the top)")
        for entry in document.get("contexts") or []:
            if isinstance(entry, dict) and entry.get("name") and entry["name"] not in names:
                names.append(entry["name"])
        current = current or document.get("current-context") or None  # the first file that sets it wins
    return names, current


def short_reason(exc: BaseException) -> str:
    """The innermost, human part of a urllib3/requests error chain ("Connection refused", not object reprs)."""
    while isinstance(inner := getattr(exc, "reason", None), BaseException):
        exc = inner
    text = str(getattr(exc, "reason", None) or exc) or type(exc).__name__
    text = re.sub(r"<[^>]*object at 0x[0-9a-f]+>:?\s*", "", text)
    text = re.sub(r"^.*?(Failed to establish a new connection|Max retries exceeded[^(]*)[:\s(]*", "", text)
    text = re.sub(r"^\w*Connection\([^)]*\):\s*", "", text).strip(" :")
    if text.count("(") > text.count(")"):
        text += ")"
    return text or type(exc).__name__


class ExistingProvider:
    """A cluster you already run, addressed by kubeconfig + context, and a registry you name."""

    name: ClassVar[str] = "existing"

    def __init__(self, options: ClusterOptions) -> None:
        """`pull_secret` is a docker config.json holding credentials for `registry`: the suite pushes with them
        and gives Pods the matching imagePullSecret. `registry_pull` is the host:port the nodes use when it
        differs from the one this machine pushes to; `registry_ca` a PEM file when the registry's TLS
        certificate is not publicly trusted."""
        self.options = options
        self.kubeconfig = options.kubeconfig
        self.context = options.context
        self.registry = options.registry
        self.auth_registry = options.auth_registry
        self.registry_pull = options.registry_pull
        self.pull_secret = options.pull_secret
        self.registry_ca = options.registry_ca

    def up(self, *, keep: bool = True) -> ClusterHandle:
        registry = self.registry_endpoint()
        auth_registry = named_auth_registry(self.options)
        kubeconfig = resolve_kubeconfig(self.kubeconfig)
        context = self._context(kubeconfig)
        server, version = self._probe(kubeconfig, context)
        for endpoint in filter(None, (registry, auth_registry)):
            self._probe_registry(endpoint.push)
        progress(f"existing: cluster at {server} (context {context}) is Kubernetes {version}")
        node_access = self._node_access(kubeconfig, context)
        return ClusterHandle(
            provider=self.name,
            kubeconfig=kubeconfig,
            context=context,
            registry=registry,
            auth_registry=auth_registry,
            node_access=node_access,
            created_by_run=False,
            description=f"existing cluster at {server} (context {context}, Kubernetes {version}); "
            f"registry {registry.push}"
            + (f", authenticated registry {auth_registry.push}" if auth_registry else "")
            + ("; node access through --node-command" if node_access.available else "")
            + (", node restarts allowed" if node_access.restart else ""),
        )

    def running_handle(self) -> ClusterHandle:
        """An existing cluster is always "running": attaching only reads (validates), so this is `up`."""
        return self.up()

    def env(self) -> dict[str, str]:
        return self.up().exports()

    def prepare(self) -> str:
        return "nothing to build: an existing cluster brings its own nodes"

    def restart(self, component: str, node: str | None = None) -> None:
        raise ClusterError(
            f"the suite restarts the {component} of a cluster it did not build only within a run, on the nodes its "
            "checks use, with --node-command and --allow-node-restarts"
        )

    def down(self) -> None:
        """Nothing to undo: this provider never creates cluster-wide objects (tests clean their namespaces)."""

    def status(self) -> str:
        kubeconfig = resolve_kubeconfig(self.kubeconfig)
        context = self._context(kubeconfig)
        try:
            server, version = self._probe(kubeconfig, context)
            state = f"reachable at {server}, Kubernetes {version}"
        except ClusterError as exc:
            state = str(exc)
        return "\n".join(
            [
                f"existing cluster, context {context}: {state}",
                f"  kubeconfig: {kubeconfig}",
                f"  registry: {self.registry or 'not set (required for tests)'}",
            ]
        )

    # -- validation -----------------------------------------------------------------------------

    def _node_access(self, kubeconfig: str, context: str) -> NodeAccess:
        """The user's opt-in (--node-command), proven on every node before a test relies on it: crictl answers
        through it, and with --allow-node-restarts the kubelet is a systemd unit there. Else no node access."""
        if not self.options.node_command:
            return NodeAccess()
        access = systemd_node_access(self.options.node_command, restarts=self.options.allow_node_restarts)
        kube = Kube(kubeconfig, context)
        try:
            names = [node["metadata"]["name"] for node in kube.nodes()]
        finally:
            kube.close()
        checks: list[tuple[str, ...]] = [(access.crictl or "crictl", "version")]
        if access.restart:
            checks.append(("systemctl", "is-active", "kubelet"))

        def check(name: str) -> None:
            for argv in checks:
                done = run(access.on(name, *argv), what=f"--node-command on node {name}", timeout=60, check=False)
                if done.returncode != 0:
                    raise ClusterError(
                        f"--node-command: `{shlex.join(access.on(name, *argv))}` exited {done.returncode}: "
                        f"{last_line(done.stderr or done.stdout)} (it must run commands as root on node {name})"
                    )

        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(check, names))  # the first failure is raised, one line naming the node
        progress(f"existing: node access on {len(names)} node(s) through --node-command"
                 + (", restarts allowed" if access.restart else ""))  # fmt: skip
        return access

    def registry_endpoint(self) -> RegistryEndpoint:
        return named_registry(self.options)

    def _context(self, kubeconfig: str) -> str:
        names, current = read_contexts(kubeconfig)
        available = ", ".join(names) or "none"
        if self.context:
            if self.context not in names:
                raise ClusterError(f"kubeconfig {kubeconfig} has no context '{self.context}' (available: {available})")
            return self.context
        if not current:
            raise ClusterError(
                f"kubeconfig {kubeconfig} has no current-context: pass --context (available: {available})"
            )
        if current not in names:
            raise ClusterError(
                f"kubeconfig {kubeconfig}: current-context '{current}' is not defined: pass --context "
                f"(available: {available})"
            )
        return current

    def _probe(self, kubeconfig: str, context: str) -> tuple[str, str]:
        """One bounded `/version` call: proves the server answers and the credentials are accepted."""
        try:
            # A single attempt: the timeout below is then the real bound.
            kube = Kube(kubeconfig, context, retries=0)
        except (ConfigException, OSError, ValueError) as exc:
            raise ClusterError(f"context '{context}' in {kubeconfig} is not usable: {exc}") from exc
        server = kube.server
        # An insecure-skip-tls-verify kubeconfig is the user's choice; urllib3's warning would break the one-line error.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)
            try:
                version = kube.answering_version((CONNECT_TIMEOUT, READ_TIMEOUT))
            except ApiException as exc:
                if exc.status in (401, 403):
                    raise ClusterError(
                        f"cluster at {server} rejected the credentials of context '{context}' (HTTP {exc.status}); "
                        "check --kubeconfig/--context"
                    ) from exc
                raise ClusterError(
                    f"cluster at {server} answered /version with HTTP {exc.status} {exc.reason}; "
                    "check --kubeconfig/--context"
                ) from exc
            except Exception as exc:  # urllib3/ssl/socket errors all mean "unreachable" here
                raise ClusterError(
                    f"cluster at {server} is unreachable: {short_reason(exc)}; check --kubeconfig/--context"
                ) from exc
            finally:
                kube.close()
        return server, version

    def _probe_registry(self, registry: str) -> None:
        """Fail early if this machine cannot reach the registry; any HTTP answer (even 401) counts as reachable."""
        reasons = []
        for scheme in ("https", "http"):
            try:
                http_get(f"{scheme}://{registry}/v2/", cafile=self.registry_ca, timeout=CONNECT_TIMEOUT)
                return
            except (OSError, ValueError) as exc:
                reasons.append(f"{scheme}: {short_reason(exc)}")
        raise ClusterError(
            f"registry {registry} is unreachable from this machine ({'; '.join(reasons)}): "
            "the suite pushes its test artifacts there; check --registry"
        )
