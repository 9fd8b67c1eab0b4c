"""The kind node image, built here, offline: a bookworm root, Debian packages, our binaries.

Steps (each named in its error, with the tool's output tail):
1. binaries — Kubernetes (kubeadm, kubelet, kubectl + the control-plane images' commands), CRI-O,
   crictl, and the etcd and CoreDNS versions `kubeadm config images list` names, all built from Go
   modules through `components.gomodules` (cached by version, shared with the local provider);
2. root file system — `mmdebstrap` of the host's own Debian suite and mirror (cached by its inputs);
3. control-plane images — one shared minbase layer (with iptables for kube-proxy) plus one binary
   layer each, written as an OCI layout and stored by the runtime's own `preload_images` (CRI-O:
   skopeo into containers-storage; containerd: `ctr images import` by a containerd on the root) under
   the exact names kubeadm expects, so nothing is pulled;
4. node files — kind's entrypoint and units from the kind module (the cgroup v1 readiness line
   reworded), CRI-O's configuration from its runtime declaration with systemd paths, the runc
   wrapper hosts without CAP_SYS_RESOURCE need, the pod-network service, `/kind/version`,
   `/kind/manifests/default-cni.yaml`;
5. `docker import` of the tree, then a metadata-only build (docker 20.10 refuses `import --change
   STOPSIGNAL`) that sets ENTRYPOINT, STOPSIGNAL, ENV and the inputs label.

The image is tagged by versions and labelled with a digest of everything that went into it: a
second build with nothing changed finds it and takes seconds.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from conformance.cluster import cni, pins
from conformance.cluster.components import gomodules
from conformance.cluster.daemons import Daemon, systemd_unit
from conformance.cluster.kind import node_files
from conformance.cluster.kind.marks import LABEL_MANAGED_BY, MANAGED_BY
from conformance.cluster.kind.tools import Tools
from conformance.cluster.mounts import unmount_all
from conformance.cluster.runtimes import runtime
from conformance.cluster.runtimes.base import NodeSetup
from conformance.cluster.runtimes.oci import render_runc_wrapper
from conformance.infra import debian
from conformance.infra.errors import ClusterError
from conformance.infra.files import copy_executable, write_atomic, write_executable
from conformance.infra.process import output, run
from conformance.infra.progress import progress
from conformance.oci import File, ImageSpec, build, write_oci_layout
from conformance.oci.base_images import pause_image

IMAGE_REPO = "ivc/kind-node"
LABEL_INPUTS = "io.ivc.inputs"
# kind's node base image (images/base/Dockerfile) minus what our nodes do not use, plus the CNI plugins;
# the runtime's own Debian dependencies (runc, conmon…) come from its declaration.
NODE_PACKAGES = (
    "systemd", "systemd-sysv", "dbus", "conntrack", "iptables", "nftables", "iproute2", "ethtool",
    "util-linux", "mount", "kmod", "libseccomp2", "e2fsprogs", "bash", "ca-certificates", "jq", "procps",
    "containernetworking-plugins", "socat",
)  # fmt: skip
IMAGE_BASE_PACKAGES = ("iptables", "conntrack", "ca-certificates")  # kube-proxy needs iptables
HOST_PACKAGES = ("mmdebstrap", "skopeo", "golang-github-containers-common")
RUNC_WRAPPER = Path("/usr/local/bin/ivc-runc")
UNITS = "etc/systemd/system"
NODE_SETUP = NodeSetup(
    state_dir=Path("/var/lib"),
    run_dir=Path("/run"),
    config_dir=Path("/etc"),  # per runtime: /etc/<runtime> (node_setup)
    log_dir=Path("/var/log/pods"),
    cgroup_manager="systemd",  # kind's kubelet uses cgroupDriver: systemd
    pause_image="",  # kubeadm's, filled in per Kubernetes version
    cni_conf_dir=Path("/etc/cni/net.d"),
    cni_plugin_dirs=(cni.PLUGIN_DIR,),
    oci_runtime=RUNC_WRAPPER,
)
# The whole recipe: every source of the packages that build the image (the runtimes' declarations, the
# node files, the image layout, the Debian and Go steps) is part of the inputs digest.
PACKAGE = Path(__file__).resolve().parents[2]
RECIPE_SOURCES = ("cluster", "oci", "infra")


def recipe_files() -> list[Path]:
    return sorted(p for d in RECIPE_SOURCES for p in (PACKAGE / d).rglob("*") if p.suffix in (".py", ".c"))


def node_setup(runtime_name: str, pause_image: str = "") -> NodeSetup:
    """Where a runtime lives in the node image: standard paths, systemd, its config under /etc (its own name)."""
    config_dir = Path("/etc") / runtime(runtime_name).config_dir_name
    return replace(NODE_SETUP, config_dir=config_dir, pause_image=pause_image)


PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"  # kubeadm's manifests name bare commands


@dataclass(frozen=True)
class Recipe:
    k8s_version: str
    runtime: str  # a declared runtime's name
    runtime_version: str
    crictl_version: str
    cache_dir: Path

    @property
    def tag(self) -> str:
        return f"{IMAGE_REPO}:{self.k8s_version}-{self.runtime.replace('-', '')}{self.runtime_version.lstrip('v')}"

    def inputs_digest(self) -> str:
        digest = hashlib.sha256()
        for source in recipe_files():
            digest.update(str(source.relative_to(PACKAGE)).encode())
            digest.update(source.read_bytes())
        digest.update(
            json.dumps(
                [
                    self.k8s_version,
                    self.runtime,
                    self.runtime_version,
                    self.crictl_version,
                    pins.KIND,
                    NODE_PACKAGES,
                    IMAGE_BASE_PACKAGES,
                    debian.mirror(),
                ]
            ).encode()
        )
        return digest.hexdigest()[:16]


def present(tools: Tools, image: str) -> dict[str, str] | None:
    """The labels of `image` when docker has it, else None."""
    proc = tools.docker_run(
        "image", "inspect", "--format", "{{json .Config.Labels}}", image, what="inspect node image", check=False
    )
    if proc.returncode != 0:
        return None
    return json.loads(proc.stdout or "null") or {}


def ensure(tools: Tools, recipe: Recipe) -> str:
    """The node image for `recipe`: found by its inputs digest, or built now. Returns its tag."""
    inputs = recipe.inputs_digest()
    labels = present(tools, recipe.tag)
    if labels is not None and labels.get(LABEL_INPUTS) == inputs:
        progress(f"kind: node image {recipe.tag} is current (inputs {inputs})")
        return recipe.tag
    started = time.monotonic()
    progress(f"kind: building node image {recipe.tag} (inputs {inputs})")
    debian.ensure_packages(HOST_PACKAGES)
    with _step("binaries"):
        binaries = _binaries(recipe)
    with _step("root file system"):
        packages = (*NODE_PACKAGES, *runtime(recipe.runtime).packages)
        root_tar = debian.root_tar("node-root", packages, recipe.cache_dir)
    work = Path(tempfile.mkdtemp(dir=recipe.cache_dir, prefix=".kind-node-"))
    root = work / "root"
    try:
        with _step("unpack the root file system"):
            root.mkdir()
            run(["tar", "-C", str(root), "-xf", str(root_tar)], what="unpack the node root", timeout=600)
        with _step("control-plane images"):
            _preload_images(root, work, binaries, recipe)
        with _step("node files"):
            _install(root, binaries, recipe)
        with _step("docker import"):
            _import(tools, root, work, recipe.tag, inputs)
    finally:
        with _step("remove the build directory"):
            _remove_tree(work)
    progress(f"kind: node image {recipe.tag} built in {time.monotonic() - started:.0f}s")
    return recipe.tag


@contextmanager
def _step(name: str) -> Iterator[None]:
    try:
        yield
    except ClusterError as error:
        raise ClusterError(f"node image step '{name}' failed: {error}") from None


@dataclass(frozen=True)
class _Binaries:
    kubernetes: gomodules.BuiltComponent
    runtime: Mapping[str, Path]
    crictl: Path
    etcd: Path
    coredns: Path
    kind_files: Path  # images/base/files of the kind module
    images: Mapping[str, str]  # kubeadm's image names: component → reference


def kubeadm_images(kubeadm: Path, k8s_version: str) -> dict[str, str]:
    """`kubeadm config images list`: the exact names the control plane will ask the runtime for."""
    listed = output(
        [str(kubeadm), "config", "images", "list", "--kubernetes-version", k8s_version],
        what="kubeadm config images list",
    ).split()
    images = {}
    for reference in listed:
        name = reference.rsplit("/", 1)[-1].split(":", 1)[0]
        images[name] = reference
    missing = {
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kube-proxy",
        "etcd",
        "coredns",
        "pause",
    } - set(images)
    if missing:
        raise ClusterError(f"kubeadm {k8s_version} lists no image for {', '.join(sorted(missing))}: {listed}")
    return images


def _binaries(recipe: Recipe) -> _Binaries:
    cache = recipe.cache_dir
    kubernetes = gomodules.build(gomodules.KUBERNETES, recipe.k8s_version, cache)
    images = kubeadm_images(kubernetes.binary("kubeadm"), recipe.k8s_version)
    etcd_version = "v" + images["etcd"].rsplit(":", 1)[1].split("-", 1)[0]  # 3.6.8-0 → v3.6.8
    coredns_version = images["coredns"].rsplit(":", 1)[1]
    kind_module = Path(gomodules.module_info(gomodules.KIND.module, pins.KIND)["Dir"])
    return _Binaries(
        kubernetes=kubernetes,
        runtime=runtime(recipe.runtime).binaries(recipe.runtime_version, cache),
        crictl=gomodules.build(gomodules.CRICTL, recipe.crictl_version, cache).binary("crictl"),
        etcd=gomodules.build(gomodules.ETCD, etcd_version, cache).binary("server"),
        coredns=gomodules.build(gomodules.COREDNS, coredns_version, cache).binary("coredns"),
        kind_files=kind_module / "images" / "base" / "files",
        images=images,
    )


def _preload_images(root: Path, work: Path, binaries: _Binaries, recipe: Recipe) -> None:
    cache = recipe.cache_dir
    base = debian.root_tar("image-base", IMAGE_BASE_PACKAGES, cache).read_bytes()
    kube = binaries.kubernetes
    commands = {
        "kube-apiserver": (kube.binary("kube-apiserver"), "/usr/local/bin/kube-apiserver"),
        "kube-controller-manager": (kube.binary("kube-controller-manager"), "/usr/local/bin/kube-controller-manager"),
        "kube-scheduler": (kube.binary("kube-scheduler"), "/usr/local/bin/kube-scheduler"),
        "kube-proxy": (kube.binary("kube-proxy"), "/usr/local/bin/kube-proxy"),
        "etcd": (binaries.etcd, "/usr/local/bin/etcd"),
        # kubeadm passes CoreDNS only arguments: the image needs the entrypoint.
        "coredns": (binaries.coredns, "/coredns"),
    }
    images = {}
    for name, (binary, path) in commands.items():
        layer = (File(path.lstrip("/"), binary.read_bytes(), mode=0o755),)
        entrypoint = (path,) if name == "coredns" else ()
        images[binaries.images[name]] = build(ImageSpec(layers=(base, layer), entrypoint=entrypoint, env=(PATH,)))
    images[binaries.images["pause"]] = build(pause_image(cache))
    layout = write_oci_layout(images, work / "oci")
    runtime(recipe.runtime).preload_images(root, layout, sorted(images), binaries.runtime, work)


def _install(root: Path, binaries: _Binaries, recipe: Recipe) -> None:
    """Everything the node root gets on top of the Debian base: binaries, the runtime, kind's files, services."""
    daemons = _install_runtime(root, binaries, recipe)
    _install_kind_files(root, binaries.kind_files, recipe, kubelet_after=daemons[-1].name)
    _enable_services(root, ("kubelet", *(daemon.name for daemon in daemons), "undo-mount-hacks", "ivc-pod-network"))


def _install_runtime(root: Path, binaries: _Binaries, recipe: Recipe) -> list[Daemon]:
    """The Kubernetes and runtime binaries, the runtime's configuration and its daemons as systemd services
    (the same declarations the local provider starts; both runtimes notify). Returns those daemons."""
    kube = binaries.kubernetes
    for command in ("kubeadm", "kubelet", "kubectl"):
        copy_executable(kube.binary(command), root / "usr/bin" / command)
    for name, path in binaries.runtime.items():
        copy_executable(path, root / "usr/local/bin" / name)
    copy_executable(binaries.crictl, root / "usr/local/bin/crictl")
    node_runtime = runtime(recipe.runtime)
    setup = node_setup(recipe.runtime, binaries.images["pause"])
    local_binaries = {name: Path("/usr/local/bin") / name for name in binaries.runtime}
    for path, text in node_runtime.config_files(setup, local_binaries, recipe.runtime_version).items():
        write_atomic(root / path.relative_to("/"), text)
    runc = node_runtime.oci_runtime(local_binaries)
    wrapper = render_runc_wrapper(runc, hugetlb=True, capabilities=True, oom_score_adj=True)
    write_executable(root / RUNC_WRAPPER.relative_to("/"), wrapper)
    daemons = node_runtime.daemons(setup, local_binaries)
    for daemon in daemons:
        unit = systemd_unit(daemon, description=f"{daemon.name} (ivc)", service_type="notify", before="kubelet.service")
        write_atomic(root / UNITS / f"{daemon.name}.service", unit)
    socket = node_runtime.socket(setup)
    write_atomic(root / "etc/crictl.yaml", f"runtime-endpoint: unix://{socket}\nimage-endpoint: unix://{socket}\n")
    return daemons


def _install_kind_files(root: Path, files: Path, recipe: Recipe, *, kubelet_after: str) -> None:
    """kind's own files (from the module of the kind that drives this image), patched where the node differs,
    and the suite's pod network."""
    units = root / UNITS
    entrypoint = (files / "usr/local/bin/entrypoint").read_text()
    write_executable(root / "usr/local/bin/entrypoint", node_files.patch_entrypoint(entrypoint))
    for script in (files / "kind/bin").iterdir():
        write_executable(root / "kind/bin" / script.name, script.read_text())
    for unit in ("kubelet.service", "kubelet.slice", "undo-mount-hacks.service"):
        write_atomic(units / unit, (files / "etc/systemd/system" / unit).read_text())
    for dropin in (files / "etc/systemd/system/kubelet.service.d").iterdir():
        write_atomic(units / "kubelet.service.d" / dropin.name, dropin.read_text())
    for sysctl in (files / "etc/sysctl.d").iterdir():
        write_atomic(root / "etc/sysctl.d" / sysctl.name, sysctl.read_text())
    write_atomic(root / "etc/default/kubelet", node_files.kubelet_defaults(f"{kubelet_after}.service"))
    write_executable(root / node_files.CNI_SCRIPT.lstrip("/"), node_files.pod_network_script())
    write_atomic(units / "ivc-pod-network.service", node_files.pod_network_unit())
    write_atomic(root / "kind/version", recipe.k8s_version + "\n")
    write_atomic(root / "kind/manifests/default-cni.yaml", node_files.default_cni_manifest())
    (root / "etc/kubernetes/manifests").mkdir(parents=True, exist_ok=True)
    (root / "opt/cni/bin").mkdir(parents=True, exist_ok=True)


def _enable_services(root: Path, services: Sequence[str]) -> None:
    """As kind's base image: only the services the node needs start, and kmsg stays out of the journal."""
    units = root / UNITS
    for pattern in (
        "lib/systemd/system/multi-user.target.wants/*",
        "etc/systemd/system/*.wants/*",
        "lib/systemd/system/local-fs.target.wants/*",
        "lib/systemd/system/sockets.target.wants/*udev*",
        "lib/systemd/system/sockets.target.wants/*initctl*",
        "lib/systemd/system/basic.target.wants/*",
        "lib/systemd/system/sysinit.target.wants/systemd-tmpfiles-setup.service",
    ):
        for path in root.glob(pattern):
            path.unlink()
    wants = units / "multi-user.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    for unit in (f"{name}.service" for name in services):
        (wants / unit).symlink_to(f"/etc/systemd/system/{unit}")
    (units / "systemd-binfmt.service").symlink_to("/dev/null")
    with open(root / "etc/systemd/journald.conf", "a") as journald:
        journald.write("ReadKMsg=no\n")


def _import(tools: Tools, root: Path, work: Path, tag: str, inputs: str) -> None:
    imported = f"{IMAGE_REPO}-rootfs:{inputs}"
    run(
        ["sh", "-c", f'tar -C "{root}" -c . | "{tools.docker}" import - "{imported}"'],
        what="docker import of the node root",
        timeout=30 * 60,
        heartbeat=60,
    )
    context = work / "metadata"
    context.mkdir()
    (context / "Dockerfile").write_text(
        f"FROM {imported}\n"
        "ENV container=docker\n"
        "STOPSIGNAL SIGRTMIN+3\n"
        'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]\n'
        f'LABEL {LABEL_MANAGED_BY}="{MANAGED_BY}" {LABEL_INPUTS}="{inputs}"\n'
    )
    run(
        [tools.docker, "build", "-q", "-t", tag, str(context)],
        what="docker build (node image metadata)",
        env={**os.environ, "DOCKER_BUILDKIT": "0"},
        timeout=600,
    )
    tools.docker_run("rmi", imported, what="remove the intermediate root image", check=False)


def _remove_tree(path: Path) -> None:
    unmount_all([str(path)])
    shutil.rmtree(path, ignore_errors=True)
