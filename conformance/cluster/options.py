"""Cluster options, declared once and parsed once at the edge (the CLI and the pytest plugin).

`OPTIONS` lists every flag with its help text and the providers that take it; both front ends add
exactly these flags, collect the strings the user gave, and call `ClusterOptions.parse`, which
validates and converts them into one typed object. Providers receive that object and never see a
flag string. A flag given to a provider that does not take it is refused in one line.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from conformance.cluster.gates import parse_feature_gates
from conformance.cluster.runtimes import RUNTIMES
from conformance.infra.errors import ClusterError
from conformance.infra.versions import release

KIND, EXISTING, LOCAL = "kind", "existing", "local"
# Every provider, declared once: name → (module, class). The module is imported only when chosen
# (`make_provider`), so `--help` and unit tests never load the Kubernetes client or probe Docker.
PROVIDERS: dict[str, tuple[str, str]] = {
    KIND: ("conformance.cluster.kind", "KindProvider"),
    EXISTING: ("conformance.cluster.existing", "ExistingProvider"),
    LOCAL: ("conformance.cluster.local", "LocalProvider"),
}
DEFAULT_PROVIDER = KIND
BUILT = frozenset({KIND, LOCAL})  # providers that build and start a cluster of their own
EVERY_PROVIDER = frozenset({"*"})  # an option every provider takes, one declared later included
DEFAULT_CACHE_DIR = Path("/var/cache/ivc")
SWITCH_ON = "on"  # what a switch option's flag stores, parsed like every other option's text


def default_cache_dir() -> Path:
    """Where built binaries and images are cached by version: $IVC_CACHE_DIR, else /var/cache/ivc."""
    return Path(os.environ.get("IVC_CACHE_DIR") or DEFAULT_CACHE_DIR)


def _release(what: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        try:
            return release(text, what)
        except ValueError as error:
            raise ClusterError(str(error)) from None

    return parse


def _names(text: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))


def _runtime_name(text: str) -> str:
    name = text.strip().lower()
    if name not in RUNTIMES:
        raise ClusterError(
            f"--runtime {text!r}: choose one of {', '.join(RUNTIMES)} (or --runtime-endpoint for a runtime of your own)"
        )
    return name


def _endpoint(text: str) -> str:
    if not text.startswith("unix:///"):
        raise ClusterError(f"--runtime-endpoint {text!r} is not unix:///path/to/the/cri.sock")
    return text


POD_SECURITY_LEVELS = ("privileged", "baseline", "restricted")


def _pod_security(text: str) -> str:
    level = text.strip().lower()
    if level not in POD_SECURITY_LEVELS:
        raise ClusterError(f"--pod-security {text!r}: choose one of {', '.join(POD_SECURITY_LEVELS)}")
    return level


def _node_runtimes(text: str) -> tuple[tuple[str, str | None], ...]:
    """`cri-o,containerd:v2.1.9` → (("cri-o", None), ("containerd", "v2.1.9")): one entry per node."""
    nodes = []
    for part in text.split(","):
        name, _, version = part.strip().partition(":")
        nodes.append((_runtime_name(name), _release("--node-runtimes")(version) if version else None))
    return tuple(nodes)


def _count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise ClusterError(f"--nodes {text!r} is not a node count like 2")
    return int(text)


def _path(text: str) -> Path:
    return Path(text).expanduser()


# In --node-command: where the node's name goes, and where the command goes as one shell-quoted string.
NODE_PLACEHOLDER, COMMAND_PLACEHOLDER = "{node}", "{command}"


def _node_command(text: str) -> tuple[str, ...]:
    """`ssh root@{node} {command}` → its argv; it must name the node, and may place the command."""
    try:
        argv = tuple(shlex.split(text))
    except ValueError as error:
        raise ClusterError(f"--node-command {text!r} does not parse as a shell command: {error}") from None
    if not any(NODE_PLACEHOLDER in part for part in argv):
        raise ClusterError(
            f"--node-command {text!r} does not name the node: put {NODE_PLACEHOLDER} where the node's name goes, "
            f"e.g. 'ssh root@{NODE_PLACEHOLDER} {COMMAND_PLACEHOLDER}' or 'docker exec {NODE_PLACEHOLDER}'"
        )
    if argv.count(COMMAND_PLACEHOLDER) > 1:
        raise ClusterError(f"--node-command {text!r} names {COMMAND_PLACEHOLDER} more than once")
    return argv


def _switch(text: str) -> bool:
    return text == SWITCH_ON


@dataclass(frozen=True)
class Option:
    flag: str
    help: str
    providers: frozenset[str]
    parse: Callable[[str], Any] = str
    metavar: str | None = None
    switch: bool = False  # a flag without a value (store_const SWITCH_ON)

    @property
    def dest(self) -> str:
        return self.flag.removeprefix("--").replace("-", "_")

    def taken_by(self, provider: str) -> bool:
        return self.providers == EVERY_PROVIDER or provider in self.providers


OPTIONS: tuple[Option, ...] = (
    Option(
        "--k8s-version",
        "Kubernetes release to build and run, e.g. v1.35.4 (default: the provider's pin)",
        BUILT,
        _release("--k8s-version"),
        "VERSION",
    ),
    Option("--runtime", "container runtime the nodes run: cri-o (default) or containerd", BUILT, _runtime_name, "NAME"),
    Option(
        "--runtime-version",
        "release of --runtime, e.g. v2.2.9 (default: the runtime's pin)",
        BUILT,
        _release("--runtime-version"),
        "VERSION",
    ),
    Option(
        "--kubelet-version",
        "a kubelet older than the control plane (version skew), e.g. v1.32.9 under --k8s-version v1.33.13",
        frozenset({LOCAL}),
        _release("--kubelet-version"),
        "VERSION",
    ),
    Option(
        "--runtime-endpoint",
        "a CRI socket you started (vendor mode): the suite never starts, configures or stops that runtime",
        frozenset({LOCAL}),
        _endpoint,
        "unix:///PATH",
    ),
    Option(
        "--feature-gates",
        "extra gates for every component, e.g. ImageVolume=false (<= 1.35 only)",
        BUILT,
        parse_feature_gates,
        "NAME=BOOL,…",
    ),
    Option(
        "--admission-plugins", "extra kube-apiserver admission plugins, e.g. AlwaysPullImages", BUILT, _names, "NAME,…"
    ),
    Option(
        "--cache-dir",
        "cache of built binaries and images, by component and version (default: $IVC_CACHE_DIR, else /var/cache/ivc)",
        EVERY_PROVIDER,
        _path,
        "DIR",
    ),
    Option(
        "--state-dir",
        "where the local cluster keeps all of its state (default: <state dir>/local)",
        frozenset({LOCAL}),
        _path,
        "DIR",
    ),
    Option(
        "--pod-security",
        "the Pod Security level the apiserver enforces where a namespace sets none (PodSecurity admission "
        "configuration, kube-system exempt), e.g. restricted as hardened clusters do",
        BUILT,
        _pod_security,
        "LEVEL",
    ),
    Option("--cluster-name", "kind cluster name (default: ivc)", frozenset({KIND}), str, "NAME"),
    Option("--node-image", "use this kind node image instead of building one", frozenset({KIND}), str, "IMAGE"),
    Option("--nodes", "kind nodes: one control-plane, the rest workers (default: 2)", frozenset({KIND}), _count, "N"),
    Option(
        "--node-runtimes",
        "a runtime per kind node, control-plane first, e.g. cri-o,containerd:v2.1.9 (nodes that differ, as in a "
        "node pool mid-upgrade; one node image per runtime)",
        frozenset({KIND}),
        _node_runtimes,
        "NAME[:VERSION],…",
    ),
    Option(
        "--kubeconfig",
        "kubeconfig of the cluster (default: $KUBECONFIG, then ~/.kube/config)",
        frozenset({EXISTING}),
        str,
        "PATH",
    ),
    Option("--context", "kubeconfig context (default: its current-context)", frozenset({EXISTING}), str, "NAME"),
    Option(
        "--registry",
        "HOST:PORT the suite pushes its artifacts to; the nodes must pull from it",
        frozenset({EXISTING}),
        str,
        "HOST:PORT",
    ),
    Option(
        "--auth-registry",
        "HOST:PORT of a registry that refuses anonymous pulls, for the pull-secret tests (credentials from "
        "--pull-secret); the suite pushes there too",
        frozenset({EXISTING}),
        str,
        "HOST:PORT",
    ),
    Option(
        "--registry-pull",
        "HOST:PORT the nodes pull from, when it differs from --registry",
        frozenset({EXISTING}),
        str,
        "HOST:PORT",
    ),
    Option(
        "--pull-secret",
        "docker config.json with credentials for --auth-registry (and for --registry, if it needs them to push)",
        frozenset({EXISTING}),
        str,
        "FILE",
    ),
    Option(
        "--registry-ca", "PEM of the CA that signed --registry's TLS certificate", frozenset({EXISTING}), str, "PEM"
    ),
    Option(
        "--node-command",
        "opt in to node access: how this machine runs a command as root on a node, {node} naming it, e.g. "
        "'ssh root@{node} {command}' ({command}: the command as one quoted string) or 'docker exec {node}' (the "
        "command's arguments appended); the checks that read a node's mount table or crictl then run",
        frozenset({EXISTING}),
        _node_command,
        "COMMAND",
    ),
    Option(
        "--allow-node-restarts",
        "with --node-command: let the disruptive checks restart a tested node's kubelet and runtime (systemctl "
        "restart; running containers stay), as on clusters the suite built",
        frozenset({EXISTING}),
        _switch,
        switch=True,
    ),
)


@dataclass(frozen=True)
class ClusterOptions:
    """Everything a provider may be told, typed. None means "the provider's default"."""

    provider: str = DEFAULT_PROVIDER
    k8s_version: str | None = None
    runtime: str | None = None
    runtime_version: str | None = None
    runtime_endpoint: str | None = None
    kubelet_version: str | None = None
    feature_gates: Mapping[str, bool] = field(default_factory=dict)
    admission_plugins: tuple[str, ...] = ()
    pod_security: str | None = None
    cache_dir: Path = field(default_factory=default_cache_dir)
    state_dir: Path | None = None
    cluster_name: str | None = None
    node_image: str | None = None
    nodes: int | None = None
    node_runtimes: tuple[tuple[str, str | None], ...] = ()
    kubeconfig: str | None = None
    context: str | None = None
    registry: str | None = None
    auth_registry: str | None = None
    registry_pull: str | None = None
    pull_secret: str | None = None
    registry_ca: str | None = None
    node_command: tuple[str, ...] = ()
    allow_node_restarts: bool = False

    @classmethod
    def parse(cls, provider: str, given: Mapping[str, str | None]) -> ClusterOptions:
        """Validate and convert the flag strings the user gave (`dest` → text; None = not given)."""
        if provider not in PROVIDERS:
            raise ClusterError(f"unknown cluster provider {provider!r}: choose one of {', '.join(PROVIDERS)}")
        values: dict[str, Any] = {"provider": provider}
        refused = []
        for option in OPTIONS:
            text = given.get(option.dest)
            if text is None:
                continue
            if not option.taken_by(provider):
                refused.append(option.flag)
                continue
            values[option.dest] = option.parse(text)
        if values.get("runtime_endpoint") and (values.get("runtime") or values.get("runtime_version")):
            raise ClusterError("--runtime-endpoint names a runtime you run: drop --runtime/--runtime-version")
        if node_runtimes := values.get("node_runtimes"):
            if values.get("runtime") or values.get("runtime_version") or values.get("node_image"):
                raise ClusterError("--node-runtimes names every node's runtime: drop --runtime/--runtime-version/"
                                   "--node-image")  # fmt: skip
            if values.get("nodes", len(node_runtimes)) != len(node_runtimes):
                raise ClusterError(f"--nodes {values['nodes']} and --node-runtimes name {len(node_runtimes)} nodes")
        if values.get("allow_node_restarts") and not values.get("node_command"):
            raise ClusterError("--allow-node-restarts restarts components on the nodes: it needs --node-command to "
                               "reach them")  # fmt: skip
        if refused:
            it = "it" if len(refused) == 1 else "them"
            raise ClusterError(
                f"--cluster={provider} does not take {', '.join(refused)}: drop {it}, or choose the --cluster {it} "
                "belongs to"
            )
        return cls(**values)

    def merged_over(self, saved: ClusterOptions) -> ClusterOptions:
        """These options, with what they leave unset taken from `saved` (the options of the last `up`)."""
        defaults = ClusterOptions(provider=self.provider)
        values = {
            f.name: getattr(self, f.name)
            if getattr(self, f.name) != getattr(defaults, f.name)
            else getattr(saved, f.name)
            for f in fields(self)
        }
        return ClusterOptions(**values)

    def to_json(self) -> dict[str, Any]:
        raw = asdict(self)
        raw["feature_gates"] = dict(self.feature_gates)
        raw["admission_plugins"] = list(self.admission_plugins)
        raw["node_runtimes"] = [list(entry) for entry in self.node_runtimes]
        raw["node_command"] = list(self.node_command)
        raw["cache_dir"] = str(self.cache_dir)
        raw["state_dir"] = str(self.state_dir) if self.state_dir else None
        return raw

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> ClusterOptions:
        values = dict(raw)
        values["admission_plugins"] = tuple(values.get("admission_plugins") or ())
        values["node_runtimes"] = tuple(tuple(entry) for entry in values.get("node_runtimes") or ())
        values["node_command"] = tuple(values.get("node_command") or ())
        values["cache_dir"] = Path(values.get("cache_dir") or default_cache_dir())
        values["state_dir"] = Path(values["state_dir"]) if values.get("state_dir") else None
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in values.items() if key in known})


def add_to(add: Callable[..., Any], providers: Iterable[str] | None = None) -> None:
    """Declare the flags of `providers` (default: every one) through `add` (argparse's add_argument or
    pytest's addoption)."""
    wanted = list(PROVIDERS if providers is None else providers)
    for option in OPTIONS:
        if any(option.taken_by(provider) for provider in wanted):
            takes = "every provider" if option.providers == EVERY_PROVIDER else "/".join(sorted(option.providers))
            described = {"dest": option.dest, "default": None, "help": f"[{takes}] {option.help}"}
            if option.switch:
                add(option.flag, action="store_const", const=SWITCH_ON, **described)
            else:
                add(option.flag, metavar=option.metavar, **described)


def option_strings(namespace: object) -> dict[str, str | None]:
    """The option strings of an argparse Namespace or pytest's config.option."""
    return {option.dest: getattr(namespace, option.dest, None) for option in OPTIONS}
