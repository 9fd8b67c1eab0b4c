"""The `local` cluster provider: a real single-node cluster as plain host processes (offline, root).

`LocalProvider` (provider.py) declares its daemons (the runtime's come from its declaration in
`conformance.cluster.runtimes`), renders the Kubernetes side's files (config.py), creates PKI
(pki.py), and prepares and afterwards restores the host (hostprep.py). Binaries come from
`conformance.cluster.components`.
"""

from conformance.cluster.local.provider import LocalProvider

__all__ = ["LocalProvider"]
