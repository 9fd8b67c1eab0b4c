"""noexec: observed and reported, never required (dropped from the KEP; no runtime enforces it)."""

import pytest

pytestmark = pytest.mark.behaviour("noexec")


def test_exec_from_the_volume_is_reported(launch, artifacts, observe):
    pod = launch("basic", reference=artifacts["exec"].reference)
    mounts, script = pod.sh_each(["grep ' /volume ' /proc/mounts", "/volume/bin/hello.sh"])
    mount = mounts.stdout.split()
    assert mount, "no /proc/mounts entry for /volume: cannot observe noexec"
    options = mount[3].split(",")
    observe("mount_options", mount[3])
    observe("noexec_option", "noexec" in options)
    observe("script_executes", script.returncode == 0 and "executed-from-volume" in script.stdout)
    if script.returncode != 0:
        observe("script_error", script.output.strip())
