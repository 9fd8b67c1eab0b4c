"""Pod networking without a network plugin: a bridge with host-local addresses (Debian's CNI plugins).

One node: every Pod on the node's bridge. Several nodes (kind): each node gets its own podCIDR's
bridge, and routes to the other nodes' podCIDRs are added by the node image's route service.
"""

from __future__ import annotations

import json
from pathlib import Path

NETWORK = "ivc"  # also names libcni's cache files (/var/lib/cni/results/ivc-*), so cleanup is exact
PLUGIN_DIR = Path("/usr/lib/cni")  # where Debian's containernetworking-plugins installs


def render_bridge_conflist(*, subnet: str, bridge: str, ipam_dir: Path | None = None) -> str:
    ipam: dict[str, object] = {"type": "host-local", "routes": [{"dst": "0.0.0.0/0"}], "ranges": [[{"subnet": subnet}]]}
    if ipam_dir is not None:
        ipam["dataDir"] = str(ipam_dir)  # default /var/lib/cni/networks; the local cluster's is removed by down
    conflist = {
        "cniVersion": "1.0.0",
        "name": NETWORK,
        "plugins": [
            {"type": "bridge", "bridge": bridge, "isGateway": True, "ipMasq": True, "hairpinMode": True, "ipam": ipam},
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }
    return json.dumps(conflist, indent=2) + "\n"
