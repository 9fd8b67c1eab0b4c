"""`python -m conformance.cluster.local up|down|status|env [options]` (temporary; the lead routes
`python -m conformance.cluster --provider local` here). Exit codes: 0 ok, 2 cluster error, 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from conformance.cluster.errors import ClusterError
from conformance.cluster.local.provider import add_arguments, from_args


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m conformance.cluster.local")
    parser.add_argument("command", choices=("up", "down", "status", "env"))
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        provider = from_args(args)
        if args.command == "up":
            handle = provider.up()
            print(f"# {handle.description}")
            print(provider.env(), end="")
        elif args.command == "down":
            provider.down()
        elif args.command == "status":
            print(provider.status())
        else:
            print(provider.env(), end="")
    except ClusterError as error:
        print(f"ivc: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; cleaned up", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
