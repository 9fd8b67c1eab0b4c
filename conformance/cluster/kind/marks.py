"""How the kind provider recognises what it created: labels on containers and images, a file in the node."""

from __future__ import annotations

import getpass
import os
import socket

LABEL_MANAGED_BY = "io.ivc.managed-by"
LABEL_CLUSTER = "io.ivc.cluster"
LABEL_OWNER = "io.ivc.owner"
MANAGED_BY = "ivc-conformance"
# Written into the node after `kind create`: lets a later process (`python -m conformance.cluster down`)
# tell a cluster this suite created from a user's own cluster of the same name.
OWNER_MARKER = "/kind/ivc-owner"


def owner() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"
