"""Fixtures the unit tests share. Tests that need a cluster use the running local one (CI starts it
before the unit tests) and skip, naming the command, when there is none."""

import pytest

from conformance.cluster import ClusterOptions, make_provider


@pytest.fixture(scope="module")
def local_cluster():
    """(the running local cluster's handle, the build cache directory)."""
    options = ClusterOptions(provider="local")
    try:
        handle = make_provider(options).running_handle()
    except Exception as error:  # noqa: BLE001 - any reason means: no usable local cluster here
        pytest.skip(f"no usable local cluster ({error}): `python -m conformance.cluster up --provider local`")
    if handle is None:
        pytest.skip("no local cluster is running: `python -m conformance.cluster up --provider local` (CI does)")
    return handle, options.cache_dir
