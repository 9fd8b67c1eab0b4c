# The plugin (conformance.framework.plugin, with its fixtures) is registered by the package's pytest11
# entry point, so a checkout and an installed wheel run the same way; nothing to register here.
