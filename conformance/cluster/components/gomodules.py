"""Binaries built from the Go module proxy, cached by component and version.

Each component is declared once (`GoComponent`: module, packages, ldflags, tags, cgo, an optional
extra step) and built by the one function `build`, which every provider and the kind node-image
builder call. A build happens in a throwaway *wrapper module* that requires exactly the release:
`go install pkg@version` refuses modules with replace directives (Kubernetes replaces every staging
module with a local path, kubernetes/kubernetes#79384) and asks the proxy for version lists, which
this machine's proxy refuses for CRI-O and cri-tools.

Everything lands in `<cache>/<component>-<version>/` and is reused while that directory holds a
`.complete` marker and every declared binary, so only a changed pin triggers a rebuild.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import re
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from conformance.cluster import pins
from conformance.infra.errors import ClusterError
from conformance.infra.files import staged_directory
from conformance.infra.process import output, run
from conformance.infra.progress import progress
from conformance.infra.versions import Version

# A fixed build date keeps rebuilds byte-identical and the reported version stable.
BUILD_DATE = "2026-01-01T00:00:00Z"
PLACEHOLDER_COMMIT = "0" * 40
HEARTBEAT_SECONDS = 60.0
BUILD_TIMEOUT = 60 * 60.0


@dataclass(frozen=True)
class BuiltComponent:
    name: str
    version: str
    bindir: Path

    def binary(self, name: str) -> Path:
        return self.bindir / name


@dataclass(frozen=True)
class GoComponent:
    """What to build for one component. `binaries` are the file names the build must leave."""

    name: str
    module: str
    packages: tuple[str, ...]
    ldflags: Callable[[str], str] = lambda version: "-s -w"
    tags: str = ""
    cgo: bool = False
    # Extra replace directives for the wrapper module, from the release's own go.mod.
    replaces: Callable[[str, Path], list[tuple[str, str]]] = lambda version, gomod: []
    # A step after `go build` (e.g. CRI-O's pinns, plain C in the module zip): (module dir, staged bindir).
    finish: Callable[[Path, Path], None] | None = None
    extra_binaries: tuple[str, ...] = field(default=())

    @property
    def binaries(self) -> tuple[str, ...]:
        return tuple(binary_name(p) for p in self.packages) + self.extra_binaries

    def cache_name(self, version: str) -> str:
        """`<name>-<version>-<recipe>`: the recipe (packages, flags, tags, the steps' code) is part of the key,
        so a changed recipe never reuses a build of the old one."""
        steps = [inspect.getsource(step) for step in (self.ldflags, self.replaces, self.finish) if step is not None]
        recipe = [self.module, self.packages, self.ldflags(version), self.tags, self.cgo, self.extra_binaries, steps]
        return f"{self.name}-{version}-{hashlib.sha256(json.dumps(recipe).encode()).hexdigest()[:8]}"


def binary_name(package: str) -> str:
    """The file `go build -o dir/` writes: the last path element, skipping a major-version suffix."""
    parts = package.split("/")
    if len(parts) > 1 and re.fullmatch(r"v\d+", parts[-1]):
        return parts[-2]
    return parts[-1]


# `go mod download` of a release newer than the local Go says so: "requires go >= 1.27.0" (in -json
# output the ">" is escaped as \u003e).
_REQUIRES_GO = re.compile(r"requires go (?:>|\\u003e)= (\S+?)[\s\"(]")


# "…: k8s.io/ktesting@v0.38.0-beta.0: reading https://<proxy>/k8s.io/ktesting/@v/v0.38.0-beta.0.zip: 403 Forbidden"
_REFUSED = re.compile(r"(\S+@\S+): reading \S+: (?:403|404|410)\b")


def refused_modules(go_error: str) -> list[str]:
    """module@version the module proxy refused to serve, in order, once each."""
    return list(dict.fromkeys(m[1] for m in _REFUSED.finditer(go_error)))


NEWER_TOOLCHAIN = pins.NEWER_GO_TOOLCHAIN


def required_toolchain(go_error: str) -> str | None:
    """The GOTOOLCHAIN a `go` failure asks for (NEWER_TOOLCHAIN), or None when it is another failure."""
    needed = _REQUIRES_GO.search(go_error)
    if needed is None:
        return None
    if Version.parse(needed[1]) > Version.parse(NEWER_TOOLCHAIN):
        raise ClusterError(f"this release needs Go {needed[1]}, newer than {NEWER_TOOLCHAIN} (the newest pinned here)")
    return NEWER_TOOLCHAIN


def go_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    # The machine's toolchain, unless a release needs a newer one (module_info names it).
    env.setdefault("GOTOOLCHAIN", "local")
    env.setdefault("GOFLAGS", "-buildvcs=false")
    env.update(extra)
    return env


def _go(args: Sequence[str], *, what: str, cwd: Path | None = None, **env: str) -> str:
    return output(
        ["go", *args], what=what, cwd=cwd, env=go_env(**env), timeout=BUILD_TIMEOUT, heartbeat=HEARTBEAT_SECONDS
    )


def module_info(module: str, version: str) -> dict[str, str]:
    """`go mod download -json`: the module's directory and go.mod in the module cache, plus `Toolchain`:
    the Go the release needs, fetched from the module proxy when newer than this machine's
    (`GOTOOLCHAIN=go1.27.0` for Kubernetes 1.38)."""
    args, what = ["mod", "download", "-json", f"{module}@{version}"], f"download {module}@{version}"
    toolchain = "local"
    try:
        raw = _go(args, what=what)
    except ClusterError as error:
        needed = required_toolchain(str(error))
        if needed is None:
            raise
        toolchain = needed
        progress(f"{module}@{version} needs {needed}: taking that toolchain from the module proxy")
        raw = _go(args, what=what, GOTOOLCHAIN=toolchain)
    info: dict[str, str] = json.loads(raw)
    if info.get("Error"):
        raise ClusterError(f"download {module}@{version}: {info['Error']}")
    info["Toolchain"] = toolchain
    return info


def render_wrapper_gomod(
    name: str,
    go_directive: str,
    requires: Sequence[tuple[str, str]],
    tools: Sequence[str],
    replaces: Sequence[tuple[str, str]] = (),
) -> str:
    """A throwaway main module that pins exactly the release we build."""
    lines = [f"module local/ivc-build-{name}", "", f"go {go_directive}", "", "godebug default=go1.26", ""]
    lines += [f"require {module} {version}" for module, version in requires]
    lines.append("")
    lines += [f"replace {module} => {module} {version}" for module, version in replaces]
    lines.append("")
    lines += [f"tool {package}" for package in tools]
    return "\n".join(lines) + "\n"


def go_directive(gomod: Path, floor: str = "1.24") -> str:
    """The release's own `go` line, raised to 1.24: the wrapper's `tool` directives need it."""
    match = re.search(r"^go (\S+)", gomod.read_text(), re.MULTILINE)
    found = match.group(1) if match else floor
    return found if Version.parse(found) >= Version.parse(floor) else floor


def cached(component: GoComponent, version: str, cache: Path) -> BuiltComponent | None:
    dest = cache / component.cache_name(version)
    if (dest / ".complete").exists() and all((dest / b).exists() for b in component.binaries):
        return BuiltComponent(component.name, version, dest)
    return None


def build(component: GoComponent, version: str, cache: Path) -> BuiltComponent:
    """The component's binaries at `version`, from the cache or built now."""
    if (hit := cached(component, version, cache)) is not None:
        progress(f"{component.name} {version}: cached in {hit.bindir}")
        return hit
    dest = cache / component.cache_name(version)
    progress(f"{component.name} {version}: building {', '.join(component.binaries)} from {component.module}")
    info = module_info(component.module, version)
    work = dest.with_name(f".work-{dest.name}")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    with staged_directory(dest) as staged:
        _build_into(component, version, info, work, staged, cache)
    shutil.rmtree(work, ignore_errors=True)
    progress(f"{component.name} {version}: built into {dest}")
    return BuiltComponent(component.name, version, dest)


def _build_into(
    component: GoComponent, version: str, info: dict[str, str], work: Path, staged: Path, cache: Path
) -> None:
    gomod = Path(info["GoMod"])
    (work / "go.mod").write_text(
        render_wrapper_gomod(
            component.cache_name(version),
            go_directive(gomod),
            [(component.module, version)],
            component.packages,
            component.replaces(version, gomod),
        )
    )
    toolchain = info["Toolchain"]
    # The Go build cache beside the binaries (unless the user chose one): one directory to keep warm.
    build_cache = {} if "GOCACHE" in os.environ else {"GOCACHE": str(cache / "go-build")}
    try:
        _go(
            ["mod", "tidy"], cwd=work, what=f"{component.module}@{version}: resolve module graph", GOTOOLCHAIN=toolchain
        )
    except ClusterError as error:
        if not (refused := refused_modules(str(error))):
            raise
        raise ClusterError(
            f"{component.module}@{version} cannot be built from this machine's module proxy (`go env GOPROXY`): "
            f"it refuses {', '.join(refused)}; pick another {component.name} release"
        ) from error
    command = ["build", "-trimpath", "-ldflags", component.ldflags(version), "-o", f"{staged}/"]
    if component.tags:
        command += ["-tags", component.tags]
    _go(
        [*command, *component.packages],
        cwd=work,
        CGO_ENABLED="1" if component.cgo else "0",
        GOTOOLCHAIN=toolchain,
        **build_cache,
        what=f"{component.module}@{version}: compile and link {', '.join(component.binaries)}",
    )
    if component.finish is not None:
        component.finish(Path(info["Dir"]), staged)
    (staged / ".complete").write_text(json.dumps({"component": component.name, "version": version}) + "\n")


# --- the components ---------------------------------------------------------------------------


def staging_modules(kubernetes_gomod: Path) -> list[str]:
    """Every module the release's go.mod replaces with a staging directory (never a hard-coded list)."""
    pattern = re.compile(r"^\s*(k8s\.io/[\w.-]+)\s*=>\s*\./staging/src/", re.MULTILINE)
    return sorted(set(pattern.findall(kubernetes_gomod.read_text())))


def _staging_replaces(version: str, gomod: Path) -> list[tuple[str, str]]:
    staging_version = "v0." + version.lstrip("v").split(".", 1)[1]
    return [(module, staging_version) for module in staging_modules(gomod)]


def kubernetes_ldflags(version: str) -> str:
    """hack/lib/version.sh's stamping; unstamped binaries report v0.0.0-master and misjudge gates."""
    major, minor = version.lstrip("v").split(".")[:2]
    values = {
        "gitVersion": version,
        "gitMajor": major,
        "gitMinor": minor,
        "gitCommit": PLACEHOLDER_COMMIT,
        "gitTreeState": "clean",
        "buildDate": BUILD_DATE,
    }
    flags = ["-s", "-w"]
    for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [f"-X {package}.{key}={value}" for key, value in values.items()]
    return " ".join(flags)


# kubectl and kube-proxy for the kind node image (kind applies manifests with kubectl; kube-proxy is an image).
KUBERNETES_COMMANDS = (
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "kubeadm",
    "kubectl",
    "kube-proxy",
)
KUBERNETES = GoComponent(
    name="kubernetes",
    module="k8s.io/kubernetes",
    packages=tuple(f"k8s.io/kubernetes/cmd/{command}" for command in KUBERNETES_COMMANDS),
    ldflags=kubernetes_ldflags,
    replaces=_staging_replaces,
)


def _pinns(module_dir: Path, bindir: Path) -> None:
    """pinns is plain C inside the CRI-O module zip; CRI-O refuses to start without it."""
    sources = sorted(str(p) for p in (module_dir / "pinns" / "src").glob("*.c"))
    run(
        ["gcc", "-std=c99", "-Os", "-Wall", "-static", "-o", str(bindir / "pinns"), *sources],
        what="cri-o: compile pinns",
    )


CRIO = GoComponent(
    name="cri-o",
    module="github.com/cri-o/cri-o",
    packages=("github.com/cri-o/cri-o/cmd/crio",),
    ldflags=lambda version: f"-s -w -X github.com/cri-o/cri-o/internal/version.buildDate={BUILD_DATE}",
    tags="containers_image_openpgp containers_image_ostree_stub exclude_graphdriver_btrfs seccomp",
    cgo=True,
    finish=_pinns,
    extra_binaries=("pinns",),
)

CRICTL = GoComponent(
    name="crictl",
    module="sigs.k8s.io/cri-tools",
    packages=("sigs.k8s.io/cri-tools/cmd/crictl",),
    ldflags=lambda version: f"-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version={version}",
)

# The etcd image kubeadm expects (`kubeadm config images list`); the version is a constant of the
# module, so only GitSHA would come from ldflags.
ETCD = GoComponent(name="etcd", module="go.etcd.io/etcd/server/v3", packages=("go.etcd.io/etcd/server/v3",))

COREDNS = GoComponent(name="coredns", module="github.com/coredns/coredns", packages=("github.com/coredns/coredns",))

# kind's version is a constant of its module (pkg/cmd/kind/version).
KIND = GoComponent(name="kind", module="sigs.k8s.io/kind", packages=("sigs.k8s.io/kind",))

# containerd 2.x and its runc shim, static (kind builds them with the same tags).
CONTAINERD = GoComponent(
    name="containerd",
    module="github.com/containerd/containerd/v2",
    packages=(
        "github.com/containerd/containerd/v2/cmd/containerd",
        "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2",
        "github.com/containerd/containerd/v2/cmd/ctr",  # imports the kind node image's preloaded images
    ),
    ldflags=lambda version: (
        f"-s -w -X github.com/containerd/containerd/v2/version.Version={version.lstrip('v')}"
        f" -X github.com/containerd/containerd/v2/version.Revision={PLACEHOLDER_COMMIT}"
    ),
    tags="urfave_cli_no_docs no_btrfs no_devmapper no_zfs no_aufs",
)

# runc for containerd: bookworm's runc 1.1.5 cannot start containerd 2.x's sandboxes ("can't get final
# child's PID from pipe: EOF"); kind's node images carry runc 1.4 with containerd 2.3.
RUNC = GoComponent(
    name="runc",
    module="github.com/opencontainers/runc",
    packages=("github.com/opencontainers/runc",),
    ldflags=lambda version: f"-s -w -X main.version={version.lstrip('v')} -X main.gitCommit={PLACEHOLDER_COMMIT}",
    tags="seccomp urfave_cli_no_docs",
    cgo=True,
)
