"""The one exception type a cluster provider raises for a problem the user can act on."""


class ClusterError(Exception):
    """A failure with an actionable, single-line message (plus optional log tail)."""
