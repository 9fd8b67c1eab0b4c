"""Build the cluster's Go binaries from the Go module proxy and cache them by version.

Kubernetes cannot be `go install`ed (its go.mod replaces every staging module with a local
path), so we generate a wrapper module that requires `k8s.io/kubernetes` and replaces each
staging module with its published `v0.X.Y` (kubernetes/kubernetes#79384). CRI-O and crictl
install directly; pinns is C that ships inside the CRI-O module zip.

Everything lands in `<cache>/<component>-<version>/` and is reused while the directory holds
a `.complete` marker, so only a changed pin triggers a rebuild.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from conformance.cluster.errors import ClusterError
from conformance.cluster.progress import progress

KUBERNETES_COMMANDS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kubeadm")
CRIO_BUILD_TAGS = "containers_image_openpgp containers_image_ostree_stub exclude_graphdriver_btrfs seccomp"
# A fixed build date keeps rebuilds byte-identical and the reported version stable.
BUILD_DATE = "2026-01-01T00:00:00Z"
PLACEHOLDER_COMMIT = "0" * 40
HEARTBEAT_SECONDS = 60


@dataclass(frozen=True)
class BuiltComponent:
    name: str
    version: str
    bindir: Path

    def binary(self, name: str) -> Path:
        return self.bindir / name


def go_env() -> dict[str, str]:
    env = dict(os.environ)
    # The machine's toolchain must do; never download another one mid-build.
    env.setdefault("GOTOOLCHAIN", "local")
    env.setdefault("GOFLAGS", "-buildvcs=false")
    return env


def _run(cmd: Sequence[str], *, cwd: Path | None = None, env: dict[str, str] | None = None, what: str) -> str:
    started = time.monotonic()
    with subprocess.Popen(list(cmd), cwd=cwd, env=env or go_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True) as proc:
        while True:
            # A cold link of kube-apiserver is minutes of silence: say we are alive, once a minute.
            try:
                stdout, stderr = proc.communicate(timeout=HEARTBEAT_SECONDS)
                break
            except subprocess.TimeoutExpired:
                progress(f"{what}: still running ({time.monotonic() - started:.0f}s)")
    if proc.returncode != 0:
        tail = "\n".join((stderr or stdout).strip().splitlines()[-15:])
        raise ClusterError(f"build failed: {what}: `{' '.join(cmd)}` exited {proc.returncode}\n{tail}")
    progress(f"{what}: done in {time.monotonic() - started:.0f}s")
    return stdout


def _cached(dest: Path) -> bool:
    return (dest / ".complete").exists()


def _reuse(dest: Path, component: str, version: str) -> BuiltComponent | None:
    if not _cached(dest):
        return None
    progress(f"{component} {version}: cached in {dest}")
    return BuiltComponent(component, version, dest)


def _mark_complete(dest: Path, info: dict[str, str]) -> None:
    (dest / ".complete").write_text(json.dumps(info, indent=2) + "\n")


def go_module_download(module: str, version: str) -> dict[str, str]:
    out = _run(["go", "mod", "download", "-json", f"{module}@{version}"], what=f"download {module}@{version}")
    return json.loads(out)


def staging_modules(kubernetes_gomod: Path) -> list[str]:
    """Every module the release's go.mod replaces with a staging directory."""
    pattern = re.compile(r"^\s*(k8s\.io/[\w.-]+)\s*=>\s*\./staging/src/", re.MULTILINE)
    return sorted(set(pattern.findall(kubernetes_gomod.read_text())))


def kubernetes_ldflags(version: str) -> str:
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


def render_wrapper_gomod(
    name: str,
    go_directive: str,
    requires: Sequence[tuple[str, str]],
    tools: Sequence[str],
    replaces: Sequence[tuple[str, str]] = (),
) -> str:
    """A throwaway main module that pins exactly the release we build.

    `go install pkg@version` is not usable here: it refuses modules with replace directives
    (Kubernetes) and it asks the proxy for the module's version list to check deprecations,
    which this machine's proxy refuses for CRI-O and cri-tools.
    """
    lines = [f"module local/ivc-build-{name}", "", f"go {go_directive}", "", "godebug default=go1.26", ""]
    lines += [f"require {module} {version}" for module, version in requires]
    lines.append("")
    lines += [f"replace {module} => {module} {version}" for module, version in replaces]
    lines.append("")
    lines += [f"tool {package}" for package in tools]
    return "\n".join(lines) + "\n"


def _go_directive(gomod: Path, fallback: str = "1.26.0") -> str:
    match = re.search(r"^go (\S+)", gomod.read_text(), re.MULTILINE)
    return match.group(1) if match else fallback


def _wrapper_build(
    dest: Path,
    module: str,
    version: str,
    packages: Sequence[str],
    *,
    replaces: Sequence[tuple[str, str]] = (),
    tags: str = "",
    ldflags: str = "-s -w",
    cgo: bool = False,
) -> Path:
    """Build `packages` of `module@version` into `<dest>.partial`; the caller finishes the directory."""
    info = go_module_download(module, version)
    work = dest.with_name(f".work-{dest.name}")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    (work / "go.mod").write_text(
        render_wrapper_gomod(dest.name, _go_directive(Path(info["GoMod"])), [(module, version)], packages, replaces)
    )
    _run(["go", "mod", "tidy"], cwd=work, what=f"{module}@{version}: resolve module graph")
    staged = dest.with_name(dest.name + ".partial")
    shutil.rmtree(staged, ignore_errors=True)
    staged.mkdir(parents=True)
    command = ["go", "build", "-trimpath", "-ldflags", ldflags, "-o", str(staged) + "/"]
    if tags:
        command += ["-tags", tags]
    _run(command + list(packages), cwd=work, env=go_env() | {"CGO_ENABLED": "1" if cgo else "0"},
         what=f"{module}@{version}: compile and link {', '.join(p.rsplit('/', 1)[-1] for p in packages)}")
    shutil.rmtree(work, ignore_errors=True)
    return staged


def _finish(staged: Path, dest: Path, component: str, version: str) -> BuiltComponent:
    _mark_complete(staged, {"component": component, "version": version})
    shutil.rmtree(dest, ignore_errors=True)
    staged.rename(dest)
    return BuiltComponent(component, version, dest)


def build_kubernetes(version: str, cache: Path) -> BuiltComponent:
    dest = cache / f"kubernetes-{version}"
    if (cached := _reuse(dest, "kubernetes", version)) is not None:
        return cached
    progress(f"kubernetes {version}: cold build of {', '.join(KUBERNETES_COMMANDS)} (~10 min on 2 cores)")
    gomod = Path(go_module_download("k8s.io/kubernetes", version)["GoMod"])
    staging_version = "v0." + version.lstrip("v").split(".", 1)[1]
    staged = _wrapper_build(
        dest, "k8s.io/kubernetes", version, [f"k8s.io/kubernetes/cmd/{c}" for c in KUBERNETES_COMMANDS],
        replaces=[(module, staging_version) for module in staging_modules(gomod)],
        ldflags=kubernetes_ldflags(version),
    )
    return _finish(staged, dest, "kubernetes", version)


def build_crio(version: str, cache: Path) -> BuiltComponent:
    dest = cache / f"cri-o-{version}"
    if (cached := _reuse(dest, "cri-o", version)) is not None:
        return cached
    progress(f"cri-o {version}: cold build of crio and pinns (~5 min)")
    staged = _wrapper_build(
        dest, "github.com/cri-o/cri-o", version, ["github.com/cri-o/cri-o/cmd/crio"], tags=CRIO_BUILD_TAGS,
        ldflags=f"-s -w -X github.com/cri-o/cri-o/internal/version.buildDate={BUILD_DATE}", cgo=True,
    )
    # pinns is plain C inside the same module zip; CRI-O refuses to start without it.
    source = Path(go_module_download("github.com/cri-o/cri-o", version)["Dir"]) / "pinns" / "src"
    _run(
        ["gcc", "-std=c99", "-Os", "-Wall", "-static", "-o", str(staged / "pinns"),
         *map(str, sorted(source.glob("*.c")))],
        what=f"cri-o {version}: compile pinns",
    )
    return _finish(staged, dest, "cri-o", version)


def build_crictl(version: str, cache: Path) -> BuiltComponent:
    dest = cache / f"crictl-{version}"
    if (cached := _reuse(dest, "crictl", version)) is not None:
        return cached
    staged = _wrapper_build(
        dest, "sigs.k8s.io/cri-tools", version, ["sigs.k8s.io/cri-tools/cmd/crictl"],
        ldflags=f"-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version={version}",
    )
    return _finish(staged, dest, "crictl", version)
