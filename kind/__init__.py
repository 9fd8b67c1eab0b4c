"""kind files (installed as the package conformance.kind_files, read with importlib.resources)."""
