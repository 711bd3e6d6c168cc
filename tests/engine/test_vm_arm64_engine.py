"""An arm64 engine in a VM, as a developer on Apple Silicon has one: Debian's docker.io in
an arm64 guest under qemu-system-aarch64 (stack/arm64-vm), booted with a CPU without
AArch32 (``a64fx``, like Apple M-series), reached through a unix socket and over tcp.

The harness must ask that engine what it runs: arm64 natively, amd64 under the QEMU the
guest registered, arm/v7 not at all (and say why), never this machine's binfmt_misc and
never an assumption. And the slowdown it reports must be the commands' own, not the VM's
slow exec path. One boot per run, shared by these tests (about 40-60 s, and 4 minutes the
first time to build the guest).
"""

from __future__ import annotations

import subprocess

import pytest
from enginekit import CPU_BOUND_TEST, TOP, by_platform, image_named, own_times, project, reported_command_s, run_plugin

from harness.engine import EMULATED, NATIVE, UNAVAILABLE, Engine
from harness.platform import Platform

pytestmark = pytest.mark.engine

SOCKET = "unix:///run/multiarch-arm64.sock"
TCP = "tcp://127.0.0.1:2376"
#: The guest's registry, forwarded to the same port here: one name, one registry.
GUEST_REGISTRY = "localhost:5100"
PLATFORMS = ("linux/arm64", "linux/amd64", "linux/arm/v7")
SAMPLE_TESTS = TOP / "sample_images" / "tests" / "test_busybox.py"


@pytest.fixture(scope="module")
def guest_sample(arm64_vm, samples) -> str:
    """samples/good:1.0, every platform, copied into the guest's registry."""
    ref = f"{GUEST_REGISTRY}/samples/good:1.0"
    subprocess.run(
        [
            "skopeo",
            "copy",
            "--all",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            f"docker://{samples['good']}",
            f"docker://{ref}",
        ],
        check=True,
        capture_output=True,
        timeout=600,
    )
    return ref


@pytest.mark.parametrize("url", [SOCKET, TCP])
def test_the_engine_is_asked_what_it_runs(arm64_vm, url):
    engine = Engine(url)
    engine.wanted = {"arm64", "amd64", "arm"}
    found = engine.survey()
    assert not found.error
    assert (found.platform, found.kernel_arch, found.this_kernel) == ("linux/arm64", "aarch64", False)
    modes = {p: engine.mode(Platform.parse(p)) for p in PLATFORMS}
    assert modes["linux/arm64"].kind == NATIVE
    amd64 = modes["linux/amd64"]
    assert amd64.kind == EMULATED
    assert "QEMU (/usr/libexec/qemu-binfmt/x86_64-binfmt-P)" in amd64.reason
    arm = modes["linux/arm/v7"]
    assert arm.kind == UNAVAILABLE
    assert arm.reason.startswith("exec format error: this arm64 CPU has no AArch32 and no arm emulator")
    assert not [m.reason for m in modes.values() if "assum" in m.reason or "binfmt_misc handler" in m.reason]
    # The guest's emulators, as seen running there: not this machine's list.
    assert found.emulators == ("/usr/libexec/qemu-binfmt/x86_64-binfmt-P (QEMU)",)


@pytest.fixture(scope="module")
def sample_run(arm64_vm, guest_sample, tmp_path_factory):
    where = project(tmp_path_factory, "vm-samples", {"test_busybox.py": SAMPLE_TESTS.read_text()})
    return run_plugin(
        where,
        "--image",
        guest_sample,
        "--platforms",
        ",".join(PLATFORMS),
        "-rs",
        env={"DOCKER_HOST": SOCKET, "COLUMNS": "100"},
        timeout=1200,
    )


def test_the_samples_pass_on_arm64_and_amd64_and_arm_is_unavailable_with_its_reason(sample_run, guest_sample):
    result, data = sample_run
    assert result.ret == 0, "\n".join(result.outlines[-40:])
    plats = by_platform(image_named(data, guest_sample))
    arm64, amd64, arm = plats["linux/arm64"], plats["linux/amd64"], plats["linux/arm/v7"]
    assert (arm64["mode"], amd64["mode"], arm["mode"]) == ("native", "emulated", "unavailable")
    for plat in (arm64, amd64):
        assert plat["checks"]["uname"]["outcome"] == "passed", plat["checks"]["uname"]
        assert {t["outcome"] for t in plat["tests"]} == {"passed"}
        assert len(plat["tests"]) == 4
    assert "QEMU" in amd64["mode_reason"]
    assert "seen running the amd64 probe" in amd64["mode_reason"]
    assert "no AArch32" in arm["mode_reason"]
    # Never "native" and then failed: nothing of arm/v7 ran, and nothing of it failed.
    assert {t["outcome"] for t in arm["tests"]} <= {"skipped"}
    assert all(c["outcome"] in ("passed", "skipped") for c in arm["checks"].values())


def test_the_header_and_the_report_name_the_engine(sample_run):
    result, data = sample_run
    out = "\n".join(result.outlines)
    assert f"multiarch: engine docker 20.10.24+dfsg1 at {SOCKET}: linux/arm64, kernel aarch64" in out
    assert "runs native arm64; emulated (QEMU) amd64; unavailable arm" in out
    (engine,) = data["engines"]
    assert engine["platform"] == "linux/arm64"
    assert engine["this_kernel"] is False
    assert engine["store"] == "overlay2"
    assert engine["runs"]["arm"]["kind"] == "unavailable"


def test_the_slowdown_is_the_commands_own(arm64_vm, guest_sample, tmp_path_factory):
    """The reported amd64 slowdown of a CPU-bound test against the ratio of the loop's own
    times inside the containers: within 25%. The VM's exec round trip (about 1 s here)
    would otherwise pull the ratio toward 1."""
    where = project(tmp_path_factory, "vm-slowdown", {"test_cpu.py": CPU_BOUND_TEST.format(steps=60000)})
    own_file = where / "own.jsonl"
    result, data = run_plugin(
        where,
        "--image",
        guest_sample,
        "--platforms",
        "linux/arm64,linux/amd64",
        "-q",
        env={"DOCKER_HOST": SOCKET, "OWN_TIMES": str(own_file)},
        timeout=1200,
    )
    assert result.ret == 0, "\n".join(result.outlines[-40:])
    own = own_times(own_file)
    image = image_named(data, guest_sample)
    reported = reported_command_s(image, "test_cpu_bound")
    plats = by_platform(image)
    own_ratio = own["linux/amd64"] / own["linux/arm64"]
    reported_ratio = reported["linux/amd64"] / reported["linux/arm64"]
    wall = {p: next(t for t in plats[p]["tests"] if "test_cpu_bound" in t["nodeid"])["duration_s"] for p in plats}
    print(f"own {own}, reported {reported}, test wall {wall}: own {own_ratio:.2f}x, reported {reported_ratio:.2f}x")
    assert abs(reported_ratio / own_ratio - 1) <= 0.25, (own, reported)
