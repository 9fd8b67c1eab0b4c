"""Every pinned release the suite builds or runs by default, in one place.

Each is a release this machine's Go module proxy serves and that was run here; `--k8s-version`,
`--runtime-version` and friends choose others.
"""

KUBERNETES = "v1.36.3"  # the newest 1.36 patch that builds here; ImageVolume is GA (locked) from 1.36
CRIO = "v1.36.3"  # CRI-O follows Kubernetes minors; only 1.36.x builds from this proxy
CONTAINERD = "v2.3.7"  # the newest 2.3.x, the LTS line
RUNC = "v1.4.4"  # both runtimes: bookworm's 1.1.5 starts no containerd 2.x sandbox and lacks ID-mapped mounts (CRI-O)
CRICTL = "v1.36.0"
KIND = "v0.33.0"  # writes kubeadm v1beta4 for 1.36; its entrypoint and units go into the node image
# A release whose go.mod needs more than this machine's Go is built with this toolchain, fetched from the
# module proxy (toolchains are modules: golang.org/toolchain); one pinned patch release, so machines agree.
NEWER_GO_TOOLCHAIN = "go1.27.3"
