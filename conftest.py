pytest_plugins = ("conformance.framework.plugin", "conformance.framework.fixtures")
