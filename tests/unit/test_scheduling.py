from __future__ import annotations

import pytest

pytest.importorskip("xdist")

from pytest_multiarch.scheduling import platform_scope


@pytest.mark.parametrize(
    ("nodeid", "scope"),
    [
        ("multiarch:127.0.0.1:5000/samples/good:1.0::elf[linux/arm64]", "linux/arm64"),
        ("multiarch:127.0.0.1:5000/samples/good:1.0::uname[linux/arm/v7]", "linux/arm/v7"),
        ("t.py::test_x[linux/386]", "linux/386"),
        ("t.py::test_x[samples/good:1.0-linux/s390x]", "linux/s390x"),
        ("t.py::test_cmd[linux/arm/v5-echo]", "linux/arm/v5"),
        ("t.py::test_win[windows/amd64]", "windows/amd64"),
        ("multiarch:127.0.0.1:5000/samples/good:1.0::index", "multiarch:127.0.0.1:5000/samples/good:1.0::index"),
        ("t.py::test_plain", "t.py::test_plain"),
    ],
)
def test_every_test_of_a_platform_shares_a_scope(nodeid, scope):
    assert platform_scope(nodeid) == scope


def test_a_crashed_test_is_not_handed_to_the_next_worker(pytester: pytest.Pytester):
    from pytest_multiarch.scheduling import PlatformScheduling

    config = pytester.parseconfig("--tx", "2*popen")
    sched = PlatformScheduling(config)
    crashed = object()  # the worker that died; assigned_work only needs it as a key
    unit = {"t.py::test_a[linux/arm64]": True, "t.py::test_b[linux/arm64]": False, "t.py::test_c[linux/arm64]": False}
    sched.assigned_work[crashed] = {"linux/arm64": unit}
    assert sched.remove_node(crashed) == "t.py::test_b[linux/arm64]"
    # The rest of the platform goes back to the queue, the test it crashed in does not.
    assert sched.workqueue["linux/arm64"] == {
        "t.py::test_a[linux/arm64]": True,
        "t.py::test_b[linux/arm64]": True,
        "t.py::test_c[linux/arm64]": False,
    }
