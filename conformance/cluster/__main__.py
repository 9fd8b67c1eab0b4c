"""`python -m conformance.cluster up|down|status|env|image|restart [--provider kind|existing|local] [options]`

Brings a cluster up outside pytest, so that test runs can reuse it (the plugin finds it, or pass
--reuse-cluster to insist). The provider defaults to `kind`, as in the pytest plugin's --cluster.
`down`, `status` and `env` reuse the options of the last `up` for anything not given again.

stdout carries only `# comments` and `export` lines, so `eval "$(python -m conformance.cluster env)"`
works; progress goes to stderr. Exit codes: 0 ok, 2 usage or cluster error (one line, no
traceback), 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from conformance.cluster import make_provider, state
from conformance.cluster.contract import ClusterHandle, export_lines
from conformance.cluster.options import DEFAULT_PROVIDER, PROVIDERS, ClusterOptions, add_to, option_strings
from conformance.infra.errors import ClusterError

COMMANDS = {
    "up": "create the cluster (or reuse a running one), save its handle, print exports",
    "down": "remove what the suite created (never a cluster it did not create)",
    "status": "show whether the cluster and its registry are running",
    "env": "print `export KUBECONFIG=… IVC_REGISTRY=…` for the running cluster",
    "image": "build what `up` needs (binaries; kind: the node image) without starting a cluster",
    "restart": "restart the kubelet or the runtime (--component) on every node or --node; running containers stay",
}
COMPONENTS = ("kubelet", "runtime")


def build_parser(provider: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m conformance.cluster",
        description="Bring up, inspect and remove the cluster the ImageVolume conformance suite runs on.",
        epilog="Each provider has its own options: `--provider existing --help` shows them. "
        "State (handle.json, private kubeconfigs) lives in $IVC_STATE_DIR, else /var/lib/ivc "
        "(~/.local/state/ivc when that is not writable).",
    )
    parser.add_argument("command", choices=list(COMMANDS), help="; ".join(f"{k}: {v}" for k, v in COMMANDS.items()))
    parser.add_argument(
        "--provider",
        "--cluster",
        dest="provider",
        choices=list(PROVIDERS),
        default=DEFAULT_PROVIDER,
        help=f"how the cluster is obtained (default: {DEFAULT_PROVIDER}; same values as pytest --cluster)",
    )
    parser.add_argument("--component", choices=COMPONENTS, help="restart: what to restart")
    parser.add_argument("--node", help="restart: only on this node (default: every node)")
    add_to(parser.add_argument_group(f"{provider} provider").add_argument, [provider])
    return parser


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
    if handle.node_access.available:
        lines.append(f"#   node access: {' '.join(handle.node_access.on('NODE', handle.node_access.crictl or ''))}")
    lines.append(f"#   handle:     {state.handle_path(handle.provider)}")
    return lines


def run(command: str, options: ClusterOptions, component: str | None = None, node: str | None = None) -> int:
    if command != "up" and (saved := state.load_options(options.provider)) is not None:
        options = options.merged_over(saved)
    provider = make_provider(options)
    if command == "up":
        handle = provider.up()
        state.save(handle, options)
        print("\n".join(summary(handle) + export_lines(handle.exports())))
    elif command == "down":
        provider.down()
        state.clear(options.provider)
        print(f"# {options.provider} cluster: removed what the suite created")
    elif command == "image":
        print(f"# {options.provider}: {provider.prepare()}")
    elif command == "restart":
        if component is None:
            raise ClusterError(f"restart needs --component {'|'.join(COMPONENTS)}")
        provider.restart(component, node)
        print(f"# {options.provider} cluster: {component} restarted on {node or 'every node'}")
    elif command == "status":
        print(provider.status())
        saved_handle = state.handle_path(options.provider)
        print(f"# saved handle: {saved_handle if saved_handle.exists() else 'none'}")
    else:
        print("\n".join(export_lines(provider.env())))
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
        return run(args.command, ClusterOptions.parse(args.provider, option_strings(args)), args.component, args.node)
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
