"""The dockerconfigjson Secret the pull-secret tests give their Pods."""

import base64
import json

from conformance.framework.fixtures import docker_config_secret
from conformance.oci.endpoint import RegistryEndpoint


def test_secret_holds_the_credentials_for_the_pull_host():
    endpoint = RegistryEndpoint(
        push="127.0.0.1:5443", pull="registry.test:5443", username="ivc", password="s3cret", ca_file="/ca.pem"
    )
    secret = docker_config_secret("pull", endpoint)
    assert secret["type"] == "kubernetes.io/dockerconfigjson"
    assert secret["metadata"] == {"name": "pull"}
    config = json.loads(base64.b64decode(secret["data"][".dockerconfigjson"]))
    entry = config["auths"]["registry.test:5443"]  # the host Pods reference, not the one the suite pushes to
    assert (entry["username"], entry["password"]) == ("ivc", "s3cret")
    assert base64.b64decode(entry["auth"]) == b"ivc:s3cret"
