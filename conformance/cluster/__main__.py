"""`python -m conformance.cluster up|down|status|env [--provider kind|existing|local] [options]`

Brings a cluster up outside pytest, so that test runs can reuse it (the plugin finds it, or pass
--reuse-cluster to insist). The provider defaults to `kind`, as in the pytest plugin's --cluster.

stdout carries only `# comments` and `export` lines, so `eval "$(python -m conformance.cluster env)"`
works; progress goes to stderr. Exit codes: 0 ok, 2 usage or cluster error (one line, no
traceback), 130 interrupted.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from conformance.cluster import (
    DEFAULT_PROVIDER,
    PROVIDERS,
    ClusterError,
    ClusterHandle,
    clear_handle,
    handle_path,
    load_handle,
    make_provider,
    parse_feature_gates,
    provider_class,
    save_handle,
)
from conformance.cluster.kind import DEFAULT_K8S_VERSION

COMMANDS = {
    "up": "create the cluster (or reuse a running one), save its handle, print exports",
    "down": "remove what the suite created (never a cluster it did not create)",
    "status": "show whether the cluster and its registry are running",
    "env": "print `export KUBECONFIG=… IVC_REGISTRY=…` for the saved cluster",
}
# CLI option → provider keyword, per provider (local may bring its own, see _local_hooks).
KIND_OPTIONS = ("cluster_name", "k8s_version", "crio_version", "node_image", "feature_gates", "admission_plugins")
EXISTING_OPTIONS = ("kubeconfig", "context", "registry", "registry_pull", "pull_secret", "registry_ca")
LOCAL_OPTIONS = ("k8s_version", "crio_version", "feature_gates", "admission_plugins")


def _gates(text: str) -> str:
    """Validate at parse time (exit 2 with usage); providers receive the flag string as the plugin passes it."""
    try:
        parse_feature_gates(text)
    except ClusterError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def _add_provider_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--provider",
        "--cluster",
        dest="provider",
        choices=list(PROVIDERS),
        default=DEFAULT_PROVIDER,
        help=f"how the cluster is obtained (default: {DEFAULT_PROVIDER}; same values as pytest --cluster)",
    )


def _add_version_options(group: argparse._ArgumentGroup, default_version: str) -> None:
    group.add_argument("--k8s-version", help=f"Kubernetes version, e.g. v1.35.4 (default: {default_version})")
    group.add_argument("--crio-version", help="CRI-O minor stream, e.g. v1.36 (default: the Kubernetes minor)")
    group.add_argument("--feature-gates", type=_gates, help="extra gates, e.g. ImageVolume=false (≤1.35 only)")
    group.add_argument("--admission-plugins", help="extra admission plugins, e.g. AlwaysPullImages")


def _local_hooks() -> tuple[Any, Any]:
    """The local provider's own add_arguments/from_args, when it offers them (module or class level)."""
    cls = provider_class("local")
    module = sys.modules[cls.__module__]
    add = getattr(cls, "add_arguments", None) or getattr(module, "add_arguments", None)
    build = getattr(cls, "from_args", None) or getattr(module, "from_args", None)
    return (add, build) if add and build else (None, None)


def build_parser(provider: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m conformance.cluster",
        description="Bring up, inspect and remove the cluster the ImageVolume conformance suite runs on.",
        epilog="Each provider has its own options: `--provider existing --help` shows them. "
        "State (handle.json, private kubeconfigs) lives in $IVC_STATE_DIR, else /var/lib/ivc "
        "(~/.local/state/ivc when that is not writable).",
    )
    parser.add_argument("command", choices=list(COMMANDS), help="; ".join(f"{k}: {v}" for k, v in COMMANDS.items()))
    _add_provider_option(parser)
    if provider == "kind":
        group = parser.add_argument_group("kind provider (Docker + kind on PATH; CRI-O node image)")
        group.add_argument("--name", dest="cluster_name", help="kind cluster name (default: ivc)")
        _add_version_options(group, f"{DEFAULT_K8S_VERSION}, a kindest/node tag")
        group.add_argument("--node-image", help="use this node image instead of building ivc/kind-node-crio")
    elif provider == "existing":
        group = parser.add_argument_group("existing provider (a cluster you run)")
        group.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)")
        group.add_argument("--context", help="kubeconfig context (default: its current-context)")
        group.add_argument("--registry", help="HOST:PORT the suite pushes to; required")
        group.add_argument("--registry-pull", help="HOST:PORT the nodes pull from, when it differs from --registry")
        group.add_argument("--pull-secret", help="docker config.json with credentials for --registry")
        group.add_argument("--registry-ca", help="PEM CA of the registry's TLS certificate, when not public")
    else:
        add, _ = _local_hooks()
        if add is not None:
            add(parser)
        else:
            group = parser.add_argument_group("local provider (offline, host processes)")
            _add_version_options(group, "the local provider's pin")
    return parser


def _options(args: argparse.Namespace, names: Sequence[str]) -> dict[str, Any]:
    return {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}


def _provider(args: argparse.Namespace, saved: ClusterHandle | None) -> Any:
    """The provider for these flags; a saved handle fills in what `down`/`status` would otherwise need again."""
    if args.provider == "kind":
        options = _options(args, KIND_OPTIONS)
        if "cluster_name" not in options and saved and saved.context and saved.context.startswith("kind-"):
            options["cluster_name"] = saved.context.removeprefix("kind-")
        return make_provider("kind", **options)
    if args.provider == "existing":
        options = _options(args, EXISTING_OPTIONS)
        if saved and "kubeconfig" not in options:
            options.update(kubeconfig=saved.kubeconfig, context=saved.context)
            options.setdefault("registry", saved.registry.push)
            options.setdefault("registry_pull", saved.registry.pull)
        return make_provider("existing", **options)
    _, build = _local_hooks()
    if build is not None:
        return build(args)
    return make_provider("local", **_options(args, LOCAL_OPTIONS))


def exports(handle: ClusterHandle) -> list[str]:
    lines = [
        f"export KUBECONFIG={shlex.quote(handle.kubeconfig)}",
        f"export IVC_REGISTRY={shlex.quote(handle.registry.pull)}",
    ]
    if handle.context:
        lines.insert(0, f"# context: {handle.context} (kubectl --context {shlex.quote(handle.context)})")
    return lines


def summary(handle: ClusterHandle) -> list[str]:
    registry = handle.registry
    lines = [
        f"# {handle.provider} cluster is up: {handle.description}",
        f"#   kubeconfig: {handle.kubeconfig}",
        f"#   context:    {handle.context or '(current-context)'}",
        f"#   registry:   push {registry.push}, pull {registry.pull}"
        + (" (with credentials)" if registry.username else ""),
    ]
    if handle.auth_registry:
        lines.append(f"#   auth registry: push {handle.auth_registry.push}, pull {handle.auth_registry.pull}")
    if handle.node_access.crictl or handle.node_access.log_dir:
        lines.append(f"#   node access: crictl {handle.node_access.crictl}, logs {handle.node_access.log_dir}")
    lines.append(f"#   handle:     {handle_path(handle.provider)}")
    return lines


def _env_from_provider(provider: Any) -> list[str]:
    """The local provider knows its own exports; accept a ready string or a mapping."""
    env = provider.env()
    if isinstance(env, Mapping):
        return [f"export {key}={shlex.quote(str(value))}" for key, value in env.items()]
    return str(env).rstrip("\n").splitlines()


def run(args: argparse.Namespace) -> int:
    saved = load_handle(args.provider)
    provider = _provider(args, saved)
    if args.command == "up":
        handle = provider.up()
        save_handle(handle)
        print("\n".join(summary(handle) + exports(handle)))
    elif args.command == "down":
        provider.down()
        clear_handle(args.provider)
        print(f"# {args.provider} cluster: removed what the suite created")
    elif args.command == "status":
        print(provider.status())
        print(f"# saved handle: {handle_path(args.provider) if saved else 'none'}")
    elif args.command == "env":
        if args.provider == "local" and hasattr(provider, "env"):
            lines = _env_from_provider(provider)
        elif saved is not None:
            lines = exports(saved)
        elif args.provider == "existing":
            lines = exports(provider.up())  # attaching creates nothing, so no `up` is needed first
        else:
            raise ClusterError(
                f"no saved {args.provider} cluster ({handle_path(args.provider)} is missing): "
                f"run `python -m conformance.cluster up --provider {args.provider}` first"
            )
        print("\n".join(lines))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # First pass: which provider's options to offer. An invalid name is reported by the full parser.
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--provider", "--cluster", dest="provider", default=DEFAULT_PROVIDER)
    try:
        known, _ = pre.parse_known_args(argv)
        provider = known.provider if known.provider in PROVIDERS else DEFAULT_PROVIDER
        args = build_parser(provider).parse_args(argv)
        return run(args)
    except ClusterError as error:
        print(f"ivc: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; cleaned up", file=sys.stderr)
        return 130
    except SystemExit as exit_:  # argparse: usage errors are 2, --help is 0
        return exit_.code if isinstance(exit_.code, int) else 2


if __name__ == "__main__":
    sys.exit(main())
