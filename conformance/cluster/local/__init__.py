"""The `local` cluster provider: a real single-node cluster as plain host processes (offline, root).

`LocalProvider` (see provider.py) builds or reuses the cached binaries (build.py), installs the
Debian packages it needs (packages.py), renders configs (config.py), creates PKI (pki.py) and runs
the daemons (processes.py); `down` removes all of it again (hostprep.py).
"""

from conformance.cluster.local.provider import LocalProvider, add_arguments, from_args

__all__ = ["LocalProvider", "add_arguments", "from_args"]
