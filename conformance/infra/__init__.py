"""The one plumbing layer under cluster/, framework/, oci/, bench and the matrix.

One module per concern, and nothing else does it: `process` runs commands (the only user of
subprocess), `files` writes files and directories atomically (the only rename), `wait` polls with a
bound (the only tenacity loop besides the API's transient retry in `kube`), `kube` reaches the
Kubernetes API (the only client construction), `versions` parses versions, `debian` downloads and
unpacks Debian packages, `readme` rewrites a generated section of README.md. Errors a user can act on
are `errors.ClusterError`, one line each; `progress` prints what a long step is doing.

This package imports nothing from cluster/, framework/ or oci/ (tests/test_layers.py checks it).
"""
