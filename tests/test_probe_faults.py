"""The runtime probe against a registry that fails now and then: on the running local cluster (CI starts
it before these tests), through a proxy that refuses the first request for each blob. The kubelet
retries the pulls; the probe must wait for them, and say "mounted", never blame the runtime."""

import json
from dataclasses import replace

from flaky_registry import flaky_registry  # tests/ is on sys.path (pytest prepends it)

from conformance.cluster.local import render
from conformance.framework.node import Crictl
from conformance.framework.probe import Seen
from conformance.framework.session import end_session, start_session
from conformance.infra.kube import Kube
from conformance.infra.wait import NotYet, wait_for
from conformance.oci.endpoint import RegistryEndpoint


def test_a_blob_refused_once_is_retried_and_the_probe_still_sees_image_volumes(local_cluster):
    handle, cache_dir = local_cluster
    pulled_through_proxy = replace(
        handle, registry=RegistryEndpoint(push=render.REGISTRY_ADDR, pull=render.FAULT_INJECTION_ADDR)
    )
    with flaky_registry(render.FAULT_INJECTION_ADDR, upstream=render.REGISTRY_ADDR) as proxy:
        suite = start_session(pulled_through_proxy, cache_dir=cache_dir)
        try:
            print(f"refused once: {len(proxy.refused)} blob requests")
            probes = suite.capabilities.probes
            assert probes, "the probe did not run"
            for group, found in probes.items():
                assert found.image_volume.seen is Seen.MOUNTED, f"[{group}] image volume: {found.image_volume}"
                assert found.sub_path.seen is Seen.MOUNTED, f"[{group}] subPath: {found.sub_path}"
            assert suite.capabilities.feature_unavailable_reason() is None
        finally:
            end_session(suite.run_id, Kube(handle.kubeconfig, handle.context))
            forget_pulled_through(handle)
    assert proxy.refused, "the proxy refused nothing: the retry path did not run"


def forget_pulled_through(handle, timeout=120.0):
    """Remove the node's copies pulled under the fault-injection name, by that name: the same artifact
    under two names makes CRI-O 1.36.3 refuse to mount it ("multiple artifacts found with matching
    digest"), which would change what the next run on this cluster sees. The session's Pods go with their
    namespaces, asynchronously: until their containers are gone the runtime refuses ("in use")."""
    for node in Kube(handle.kubeconfig, handle.context).nodes():
        crictl = Crictl(handle.node_access, node["metadata"]["name"])
        listed = json.loads(crictl.run("images", "-o", "json").stdout or "{}").get("images") or []
        prefix = f"{render.FAULT_INJECTION_ADDR}/"
        tags = [tag for image in listed for tag in image.get("repoTags") or [] if tag.startswith(prefix)]
        for tag in tags:

            def removed(tag=tag, crictl=crictl):
                result = crictl.run("rmi", tag)
                if result.returncode != 0:
                    raise NotYet(f"crictl rmi {tag}: {result.output.strip()[-200:]}")

            wait_for(f"the node to let go of {tag}", removed, timeout=timeout, interval=1.0)
