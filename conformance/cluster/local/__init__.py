"""The `local` cluster provider: a real single-node cluster as plain host processes (offline, root).

`LocalPlan` (plan.py) is what the cluster is: versions, gates, files, and every daemon in start
order (the runtime's come from its declaration in `conformance.cluster.runtimes`). `LocalProvider`
(provider.py) keeps the contract and the state; render.py renders the Kubernetes side's files,
pki.py creates the PKI, bootstrap.py the cluster's first objects, hostprep.py prepares the host and
teardown.py restores it. Binaries come from `conformance.cluster.components`.
"""

from conformance.cluster.local.provider import LocalProvider

__all__ = ["LocalProvider"]
