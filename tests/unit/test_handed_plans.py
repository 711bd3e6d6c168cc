"""Plans the xdist controller hands its workers: plain data there and back, used as they are."""

from __future__ import annotations

import json

import pytest

from harness import Harness
from harness.engine import EMULATED, NATIVE, UNAVAILABLE, Mode
from harness.platform import Platform
from harness.registry import Registry
from harness.session import ImagePlan, PlanError, Target

# Nothing listens on port 9: a harness that tried to resolve this image would fail.
IMAGE = "127.0.0.1:9/samples/good:1.0"
INDEX = "sha256:" + "a" * 64


def plan() -> ImagePlan:
    amd64, arm_v6, s390x = (Platform.parse(p) for p in ("linux/amd64", "linux/arm/v6", "linux/s390x"))
    targets = (
        Target(IMAGE, INDEX, amd64, "sha256:" + "1" * 64, Mode(NATIVE, "the engine's own platform")),
        Target(
            IMAGE,
            INDEX,
            arm_v6,
            "sha256:" + "2" * 64,
            Mode(EMULATED, "binfmt_misc qemu-arm (F)", (("QEMU_CPU", "arm1176"),)),
            "unix:///run/other.sock",
        ),
        Target(IMAGE, INDEX, s390x, "sha256:" + "3" * 64, Mode(UNAVAILABLE, "no handler: apt-get install ...")),
    )
    return ImagePlan(
        IMAGE,
        INDEX,
        True,
        (amd64, arm_v6, s390x),
        targets,
        (Platform.parse("linux/riscv64"),),
        ("the index lists linux/amd64 more than once; the first entry is tested",),
    )


def test_a_plan_survives_plain_data():
    original = plan()
    data = json.loads(json.dumps(original.to_data()))  # what execnet or JSON can carry
    assert ImagePlan.from_data(data) == original


def test_a_handed_plan_is_used_without_resolving():
    with Harness("linux/amd64,linux/arm/v6,linux/s390x", registry=Registry(retries=1), plans=[plan()]) as harness:
        assert harness.plan(IMAGE) == plan()


def test_a_handed_failure_is_raised_as_it_was_met():
    why = "127.0.0.1:5000/samples/gone:1.0: the registry answered 404 for the manifest"
    harness = Harness("linux/amd64", plan_errors={"127.0.0.1:5000/samples/gone:1.0": why})
    with harness, pytest.raises(PlanError) as err:
        harness.plan("127.0.0.1:5000/samples/gone:1.0")
    assert str(err.value) == why
