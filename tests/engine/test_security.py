"""What the harness's containers may do on the host: nothing special."""

from __future__ import annotations

import pytest
from enginekit import project, run_plugin

INSPECT = """
import docker


def test_my_container_has_no_privilege(container):
    attrs = docker.from_env().containers.get(container.id).attrs
    host = attrs["HostConfig"]
    assert host["Privileged"] is False
    assert not host.get("CapAdd")
    assert not host.get("Binds")
    assert not host.get("Devices")
    assert attrs["Mounts"] == []  # no bind mounts, no volumes
    assert host.get("PidMode") in ("", None)
    assert host.get("NetworkMode") in ("default", "bridge")
    assert host.get("IpcMode") in ("private", "shareable", "", None)
    assert not host.get("SecurityOpt")  # seccomp and AppArmor as the engine sets them
    print("checked", attrs["Config"]["Image"])
"""


def test_containers_are_never_privileged_and_mount_nothing(samples, tmp_path_factory, no_leftovers):
    where = project(tmp_path_factory, "security", {"test_inspect.py": INSPECT})
    result, _ = run_plugin(
        where, "--image", samples["good"], "--platforms", "linux/amd64,linux/arm64,linux/arm/v6", "-s"
    )
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()[-3000:]
    result.assert_outcomes(passed=2 + 12 + 3, skipped=3)
    assert result.stdout.str().count("checked 127.0.0.1:5000/samples/good@sha256:") == 3
