"""Pod templates the tests render (installed as the package conformance.manifests, read with importlib.resources)."""
