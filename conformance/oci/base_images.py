"""The two ordinary images the suite and its clusters need besides the test artifacts.

An offline cluster cannot pull registry.k8s.io/pause or a busybox image, so both are built here
from the machine's own toolchain and Debian packages, FROM scratch, and pushed to the suite's
registry: `pause` is the sandbox image the runtimes are configured with, `shell` is the image of
every test container (it reads the mounted volume with cat, ls, stat, …).
"""

from __future__ import annotations

import hashlib
import shutil
import struct
from collections.abc import Iterable
from pathlib import Path

from conformance.infra import debian
from conformance.infra.files import staged_file
from conformance.infra.process import run
from conformance.oci.layout import Dir, Entry, File, ImageSpec, Symlink, build, content_tag
from conformance.oci.registry import RegistryClient

PAUSE_REPOSITORY = "ivc/pause"
PAUSE_TAG = "3.10.1"
SHELL_REPOSITORY = "ivc/shell"
# The image's own user: Pod Security `restricted` needs a non-root user (runAsNonRoot), and a numeric one in
# the image lets a platform that assigns UIDs (OpenShift) replace it; Pods that need root ask for uid 0.
SHELL_USER = "65534:65534"

PAUSE_SOURCE = Path(__file__).with_name("pause.c")
BUSYBOX_PACKAGE = "busybox-static"
SHELL_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

_PT_INTERP = 3  # ELF program header naming the dynamic loader: present iff dynamically linked


class NodeImageError(RuntimeError):
    """A node image cannot be built here; the message is one line saying what to install or do."""


def pause_image(cache_dir: Path) -> ImageSpec:
    """`/pause` alone, entrypoint ["/pause"]: the sandbox image for CRI-O and containerd."""
    binary = _pause_binary(cache_dir)
    return ImageSpec(layers=((File("pause", binary.read_bytes(), mode=0o755),),), entrypoint=("/pause",))


def shell_image(cache_dir: Path) -> ImageSpec:
    """Debian's static busybox with every applet linked in /bin, entrypoint ["/bin/sh"]."""
    busybox = _busybox_binary(cache_dir)
    applets = _applets(busybox)
    entries: list[Entry] = [
        File("bin/busybox", busybox.read_bytes(), mode=0o755),
        # Relative links keep working wherever the tree is mounted, e.g. as an image volume.
        *(Symlink(f"bin/{name}", "busybox") for name in applets if name != "busybox"),
        Dir("tmp", mode=0o1777),
        Dir("root", mode=0o700),
        File("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"),
        File("etc/group", b"root:x:0:\nnobody:x:65534:\n"),
    ]
    return ImageSpec(layers=(tuple(entries),), entrypoint=("/bin/sh",), env=(f"PATH={SHELL_PATH}",), user=SHELL_USER)


def push_base_images(
    client: RegistryClient, cache_dir: Path, which: Iterable[str] = ("pause", "shell")
) -> dict[str, str]:
    """Build and push the named node images; returns {name: "<pull host>/<repository>:<tag>"}. The shell
    image's tag is its content's (`content_tag`): a node that cached another build never runs it."""
    known = {
        "pause": (pause_image, PAUSE_REPOSITORY, PAUSE_TAG),
        "shell": (shell_image, SHELL_REPOSITORY, None),
    }
    names = list(which)
    for name in names:  # fail before building anything
        if name not in known:
            raise ValueError(f"unknown node image {name!r}: choose from {', '.join(sorted(known))}")
    references: dict[str, str] = {}
    for name in names:
        describe, repository, fixed_tag = known[name]
        built = build(describe(cache_dir))
        tag = fixed_tag or content_tag(built.manifest_digest)
        client.push(built, repository, tag)
        references[name] = f"{client.endpoint.pull}/{repository}:{tag}"
    return references


# --------------------------------------------------------------------------------------------
# pause


def _pause_binary(cache_dir: Path) -> Path:
    """Compile pause.c once per source version; the hash in the name retires stale binaries."""
    source = PAUSE_SOURCE.read_bytes()
    cached = cache_dir / f"pause-{hashlib.sha256(source).hexdigest()[:12]}"
    if cached.is_file():
        return cached
    gcc = shutil.which("gcc")
    if gcc is None:
        raise NodeImageError(
            "gcc is needed to build the pause image: install it with `apt-get install -y gcc libc6-dev`"
        )
    _make_dir(cache_dir)
    with staged_file(cached) as output:  # a concurrent or interrupted build never leaves half a binary
        proc = run([gcc, "-Os", "-static", "-s", "-o", str(output), str(PAUSE_SOURCE)], what="gcc pause.c", check=False)
        if proc.returncode != 0:
            detail = " ".join((proc.stderr or proc.stdout).split())[-300:]
            raise NodeImageError(
                f"compiling the pause binary failed ({detail}): static linking needs `apt-get install -y libc6-dev`"
            )
    return cached


# --------------------------------------------------------------------------------------------
# busybox


def _busybox_binary(cache_dir: Path) -> Path:
    """A static busybox: the system's if it is one, else Debian's busybox-static unpacked into the cache
    (`infra.debian.unpacked`: never installed, since it conflicts with the `busybox` other tools may need)."""
    system = Path("/bin/busybox")
    if system.is_file() and _is_static_elf(system):
        return system
    unpacked = debian.unpacked(BUSYBOX_PACKAGE, debian.codename(), cache_dir) / "bin" / "busybox"
    if not unpacked.is_file() or not _is_static_elf(unpacked):
        raise NodeImageError(f"Debian's {BUSYBOX_PACKAGE} gave no static bin/busybox at {unpacked}: delete it")
    return unpacked


def _applets(busybox: Path) -> list[str]:
    proc = run([str(busybox), "--list"], what="busybox --list", check=False)
    applets = sorted({line.strip() for line in proc.stdout.splitlines() if line.strip()})
    if proc.returncode != 0 or "sh" not in applets:
        raise NodeImageError(f"`{busybox} --list` did not list the sh applet: is it a busybox for this machine?")
    return applets


def _is_static_elf(path: Path) -> bool:
    """True for an ELF file with program headers but no PT_INTERP, i.e. needing no dynamic loader."""
    with path.open("rb") as elf:
        header = elf.read(64)
        if len(header) < 52 or header[:4] != b"\x7fELF":
            return False
        order = "<" if header[5] == 1 else ">"
        if header[4] == 2:  # ELFCLASS64
            (phoff,) = struct.unpack_from(order + "Q", header, 0x20)
            phentsize, phnum = struct.unpack_from(order + "HH", header, 0x36)
        else:
            (phoff,) = struct.unpack_from(order + "I", header, 0x1C)
            phentsize, phnum = struct.unpack_from(order + "HH", header, 0x2A)
        elf.seek(phoff)
        table = elf.read(phentsize * phnum)
    if phnum == 0 or len(table) < phentsize * phnum:
        return False
    return all(struct.unpack_from(order + "I", table, i * phentsize)[0] != _PT_INTERP for i in range(phnum))


def _make_dir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except PermissionError:
        raise NodeImageError(
            f"cannot create {path}: run as root or pass --cache-dir (or set IVC_CACHE_DIR) to a writable directory"
        ) from None
