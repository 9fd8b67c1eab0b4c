"""Cluster-wide admission the built providers can set up: the Pod Security level enforced by default.

`--pod-security restricted` makes a local or kind cluster behave as hardened clusters do: every
namespace that says nothing enforces that level (kube-system exempt, as the control plane's own Pods
need more). The apiserver reads it from an AdmissionConfiguration file
(`--admission-control-config-file`; pod-security.admission.config.k8s.io/v1, GA since 1.25).
"""

from __future__ import annotations

import yaml

# Where a kind control-plane node sees the file (mounted from the host) and the apiserver reads it.
IN_NODE_PATH = "/etc/kubernetes/ivc/admission.yaml"


def render_admission_configuration(pod_security: str) -> str:
    """An AdmissionConfiguration whose PodSecurity defaults enforce (audit, warn) `pod_security`."""
    defaults = {}
    for mode in ("enforce", "audit", "warn"):
        defaults[mode] = pod_security
        defaults[f"{mode}-version"] = "latest"
    document = {
        "apiVersion": "apiserver.config.k8s.io/v1",
        "kind": "AdmissionConfiguration",
        "plugins": [
            {
                "name": "PodSecurity",
                "configuration": {
                    "apiVersion": "pod-security.admission.config.k8s.io/v1",
                    "kind": "PodSecurityConfiguration",
                    "defaults": defaults,
                    "exemptions": {"usernames": [], "runtimeClasses": [], "namespaces": ["kube-system"]},
                },
            }
        ],
    }
    return yaml.safe_dump(document, sort_keys=False)
