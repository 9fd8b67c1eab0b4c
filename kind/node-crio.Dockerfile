# A kind node image that runs CRI-O instead of containerd (kind calls this "possible, not supported").
#
# Why: containerd mounts no OCI artifacts as image volumes; CRI-O does. Recipe after cri-o's
# tutorials/crio-in-kind.md, with the repository from cri-o/packaging's README (isv:cri-o on OBS).
#
#   docker build -f kind/node-crio.Dockerfile \
#     --build-arg KIND_NODE_IMAGE=kindest/node:v1.36.1 --build-arg CRIO_VERSION=v1.36 \
#     -t ivc/kind-node-crio:v1.36.1-crio1.36 kind/
#
# Use the classic/default builder: a docker-container buildx builder leaves the result in its cache.

# A published kindest/node tag; the Kubernetes version of the cluster is the one in this image.
ARG KIND_NODE_IMAGE=kindest/node:v1.36.1
FROM ${KIND_NODE_IMAGE}

# CRI-O minor stream (v1.XX); keep it equal to the Kubernetes minor, as CRI-O versions follow Kubernetes.
ARG CRIO_VERSION=v1.36

# - The repository key is saved as .asc: apt reads armored keys itself, so no gpg is needed in the node.
# - --force-confold keeps kind's own conffiles (e.g. /etc/crictl.yaml) without an interactive prompt;
#   what CRI-O needs from them is rewritten below.
# - The package's crun default runtime and 10-crio-bridge.conflist.disabled stay as shipped: kind
#   installs its own CNI (kindnet), and systemd is the cgroup manager on both sides.
RUN set -eux; \
    repo="https://download.opensuse.org/repositories/isv:/cri-o:/stable:/${CRIO_VERSION}/deb"; \
    mkdir -p /etc/apt/keyrings; \
    curl -fsSL --retry 5 "${repo}/Release.key" -o /etc/apt/keyrings/cri-o-apt-keyring.asc; \
    echo "deb [signed-by=/etc/apt/keyrings/cri-o-apt-keyring.asc] ${repo}/ /" > /etc/apt/sources.list.d/cri-o.list; \
    apt-get update; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold cri-o; \
    rm -rf /var/lib/apt/lists/*; \
    crio --version

# crictl (kind's, in /usr/local/bin) must talk to CRI-O: diagnostics and `kind export logs` use it.
RUN printf 'runtime-endpoint: unix:///var/run/crio/crio.sock\nimage-endpoint: unix:///var/run/crio/crio.sock\n' \
        > /etc/crictl.yaml

# The kubelet is pointed at crio.sock by the kind config (kubeadm criSocket patches); containerd
# would only idle and hold memory, so it no longer starts at boot.
RUN systemctl disable containerd && systemctl enable crio

LABEL io.ivc.node-image="kind node with CRI-O ${CRIO_VERSION}"
