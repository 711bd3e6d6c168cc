"""Asking an engine what it runs (harness.survey), on what engines answered.

The docker top answers, `docker info` fields and binfmt_misc entries below were recorded
from real engines here: bookworm's docker.io 20.10 and podman 4.3 on this x86-64 machine,
and docker.io 20.10 in an arm64 guest under qemu-system-aarch64 with a CPU without
AArch32 (`-cpu a64fx`). Rosetta cannot run here: its entries are the registration Apple
documents for Linux VMs (magic and mask of an x86-64 ELF executable, flags OCF or with P
since macOS 14), as Lima and vfkit register it, written the way the kernel prints an
entry, and the process lines `ps` shows in such a VM (`/mnt/lima-rosetta/rosetta
/bin/sh`, as reported by colima users).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from harness import binfmt, elf
from harness.arch import spec_for
from harness.cgroups import cgroup_cpu_file, cgroup_cpu_seconds
from harness.platform import Platform
from harness.survey import (
    EMULATED,
    NATIVE,
    UNAVAILABLE,
    FamilyRun,
    Survey,
    cache_key,
    judge,
    keep,
    load_cached,
    local_emulators,
    probe_archive,
    read_top,
    store_of,
)
from harness.tinyelf import PROGRAMS, program_for

# --- recorded answers ---------------------------------------------------------------------
DOCKER_TOP = {
    "Titles": ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"],
    "Processes": [
        ["root", "1463", "1442", "1", "16:58", "?", "00:00:00", "/probe/amd64 nonce123"],
        ["root", "1503", "1442", "1", "16:58", "?", "00:00:00", "/probe/386"],
        [
            "root",
            "1519",
            "1442",
            "2",
            "16:58",
            "?",
            "00:00:00",
            "/usr/libexec/qemu-binfmt/aarch64-binfmt-P /probe/arm64 /probe/arm64",
        ],
        [
            "root",
            "1536",
            "1442",
            "2",
            "16:58",
            "?",
            "00:00:00",
            "/usr/libexec/qemu-binfmt/arm-binfmt-P /probe/arm /probe/arm",
        ],
    ],
}
PODMAN_TOP = {
    "Processes": [
        ["0", "1", "0", "0.000", "1.498597507s", "?", "0s", "/probe/amd64 x"],
        [
            "0",
            "6",
            "0",
            "0.000",
            "1.498655163s",
            "?",
            "0s",
            "/usr/libexec/qemu-binfmt/aarch64-binfmt-P /probe/arm64 /probe/arm64",
        ],
    ],
    "Titles": ["USER", "PID", "PPID", "%CPU", "ELAPSED", "TTY", "TIME", "COMMAND"],
}
#: `docker exec` of the arm program on the a64fx guest.
A64FX_ARM = "exec /probe/arm: exec format error"

ROSETTA_ENTRY = """enabled
interpreter /mnt/lima-rosetta/rosetta
flags: OCF
offset 0
magic 7f454c4602010100000000000000000002003e00
mask fffffffffffefe00fffffffffffffffffeffffff
"""
ROSETTA_ENTRY_P = ROSETTA_ENTRY.replace("/mnt/lima-rosetta/rosetta", "/run/rosetta/rosetta").replace("OCF", "POCF")


def test_docker_top_names_the_emulator_of_each_program() -> None:
    seen = read_top(DOCKER_TOP)
    assert seen["amd64"] == ("", "1463")
    assert seen["386"] == ("", "1503")
    assert seen["arm64"] == ("/usr/libexec/qemu-binfmt/aarch64-binfmt-P", "1519")
    assert set(seen) == {"amd64", "386", "arm64", "arm"}


def test_podman_top_has_its_own_titles() -> None:
    seen = read_top(PODMAN_TOP)
    assert seen == {"amd64": ("", "1"), "arm64": ("/usr/libexec/qemu-binfmt/aarch64-binfmt-P", "6")}


def test_a_program_path_in_the_arguments_of_another_command_is_not_a_run() -> None:
    top = {"Titles": ["PID", "CMD"], "Processes": [["7", "sh -c echo /probe/arm64"]]}
    assert read_top(top) == {}


@pytest.mark.parametrize(
    ("family", "engine", "seen", "error", "kind", "emulator"),
    [
        ("amd64", "amd64", ("", "1"), "", NATIVE, ""),
        ("386", "amd64", ("", "2"), "", NATIVE, ""),
        ("arm64", "amd64", ("/usr/libexec/qemu-binfmt/aarch64-binfmt-P", "3"), "", EMULATED, "QEMU"),
        ("amd64", "arm64", ("/usr/bin/qemu-x86_64-static", "3"), "", EMULATED, "QEMU"),
        # Rosetta in an arm64 VM: without P (before macOS 14) and with it.
        ("amd64", "arm64", ("/mnt/lima-rosetta/rosetta", "9"), "", EMULATED, "Rosetta"),
        ("amd64", "arm64", ("/run/rosetta/rosetta", "9"), "", EMULATED, "Rosetta"),
        # arm on an arm64 CPU with AArch32 runs natively; on one without, it is refused.
        ("arm", "arm64", ("", "4"), "", NATIVE, ""),
        ("arm", "arm64", None, A64FX_ARM, UNAVAILABLE, ""),
        # Something ran an amd64 program on arm64 without showing itself.
        ("amd64", "arm64", ("", "5"), "", EMULATED, "an emulator that did not show itself"),
    ],
)
def test_judge(family: str, engine: str, seen: tuple[str, str] | None, error: str, kind: str, emulator: str) -> None:
    run = judge(family, engine, seen, error)
    assert (run.kind, run.emulator) == (kind, emulator)


def test_arm_without_aarch32_says_why_and_the_fix() -> None:
    run = judge("arm", "arm64", None, A64FX_ARM)
    assert run.reason.startswith("exec format error: this arm64 CPU has no AArch32 and no arm emulator")
    assert "qemu-user-static" in run.reason


def test_a_missing_emulator_elsewhere_is_not_blamed_on_aarch32() -> None:
    run = judge("riscv64", "amd64", None, "exec /probe/riscv64: exec format error")
    assert "no emulator for riscv64 is registered" in run.reason
    assert "AArch32" not in run.reason


def test_an_interpreter_containers_cannot_open_points_at_the_f_flag() -> None:
    run = judge("arm64", "amd64", None, "exec /probe/arm64: no such file or directory")
    assert run.kind == UNAVAILABLE
    assert "F flag" in run.reason


def test_rosetta_entries_parse_and_match_amd64_only(tmp_path: Path) -> None:
    for name, text in (("rosetta", ROSETTA_ENTRY), ("rosetta-p", ROSETTA_ENTRY_P)):
        (tmp_path / name).write_text(text)
    handlers = binfmt.read_handlers(tmp_path)
    amd64 = spec_for(Platform.parse("linux/amd64"))
    arm64 = spec_for(Platform.parse("linux/arm64"))
    assert amd64 is not None
    assert arm64 is not None
    assert binfmt.handler_for(amd64, handlers) is not None
    assert binfmt.handler_for(arm64, handlers) is None
    assert local_emulators(handlers) == ("rosetta (Rosetta, OCF)", "rosetta-p (Rosetta, POCF)")


def test_this_machines_recorded_debian_handlers_are_qemu() -> None:
    handlers = binfmt.read_handlers(Path(__file__).parent.parent / "data" / "binfmt-debian")
    found = local_emulators(handlers)
    assert found
    assert all("(QEMU, " in item for item in found)


def test_store_of_docker_info() -> None:
    assert store_of({"Driver": "overlay2", "DriverStatus": [["Backing Filesystem", "extfs"]]}) == "overlay2"
    containerd = {"Driver": "overlayfs", "DriverStatus": [["driver-type", "io.containerd.snapshotter.v1"]]}
    assert store_of(containerd) == "containerd (overlayfs)"
    assert store_of({}) == "?"


#: What the arm64 engine in the VM (a64fx: no AArch32) answered, as a survey keeps it.
A64FX_VM = Survey(
    "docker 20.10.24+dfsg1 at unix:///run/multiarch-arm64.sock",
    version="20.10.24+dfsg1",
    platform="linux/arm64",
    kernel_arch="aarch64",
    kernel="6.1.0-50-arm64",
    operating_system="Debian GNU/Linux 12 (bookworm)",
    store="overlay2",
    emulators=("/usr/libexec/qemu-binfmt/x86_64-binfmt-P (QEMU)",),
    runs={
        "arm64": FamilyRun("arm64", NATIVE),
        "amd64": FamilyRun("amd64", EMULATED, "QEMU", "/usr/libexec/qemu-binfmt/x86_64-binfmt-P"),
        "arm": judge("arm", "arm64", None, A64FX_ARM),
    },
    seconds=12.9,
)


def test_a_survey_travels_as_data() -> None:
    found = A64FX_VM
    assert Survey.from_data(found.to_data()) == found
    assert found.modes_line() == "native arm64; emulated (QEMU) amd64; unavailable arm (asked in 12.90s)"
    assert "not this machine's kernel" in found.describe()


def test_many_handlers_of_one_emulator_are_counted() -> None:
    many = tuple(f"qemu-{n} (QEMU, PF)" for n in ("aarch64", "arm", "ppc64le", "s390x", "riscv64"))
    found = Survey("x", platform="linux/amd64", emulators=(*many, "rosetta (Rosetta, OCF)"))
    assert "QEMU x5 (binfmt_misc, flags PF), rosetta (Rosetta, OCF)" in found.describe()


# --- the programs ---------------------------------------------------------------------------
@pytest.mark.parametrize("family", sorted(PROGRAMS))
def test_each_program_is_an_executable_of_its_architecture(family: str) -> None:
    program = PROGRAMS[family]
    info = elf.parse(program.elf(), family)
    assert (info.elf_class, info.big_endian, info.machine) == (
        program.spec.elf_class,
        program.spec.big_endian,
        program.spec.machine,
    )
    assert info.etype == 2
    assert info.interp is None
    assert info.dynamic is None
    # The kernel's binfmt_misc sees what the harness expects of that architecture.
    assert program.elf()[:20] == binfmt.elf_header(program.spec)


def test_every_arm_variant_shares_the_arm_program() -> None:
    programs = {program_for(Platform.parse(p)) for p in ("linux/arm/v5", "linux/arm/v6", "linux/arm/v7")}
    assert len(programs) == 1
    arm = programs.pop()
    assert arm is not None
    assert elf.parse(arm.elf()).flags == 0x05000000
    assert program_for(Platform.parse("linux/amd64/v3")) is PROGRAMS["amd64"]
    assert program_for(Platform.parse("windows/amd64")) is None


def test_the_probe_image_is_the_same_bytes_every_time() -> None:
    first, again = probe_archive("arm64"), probe_archive("arm64")
    assert first == again
    assert first[0] != probe_archive("amd64")[0]


# --- the cgroup CPU counters ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("cgroup", "counter", "text", "seconds"),
    [
        # cgroup v2: one hierarchy, microseconds in cpu.stat.
        (
            "0::/system.slice/docker-abc.scope\n",
            "system.slice/docker-abc.scope/cpu.stat",
            "usage_usec 1500000\nuser_usec 1000000\nsystem_usec 500000\n",
            1.5,
        ),
        # cgroup v1 (this machine's docker): nanoseconds in cpuacct.usage of the cpu,cpuacct mount.
        (
            "9:name=systemd:/docker/abc\n3:cpu,cpuacct:/docker/abc\n2:pids:/docker/abc\n",
            "cpu,cpuacct/docker/abc/cpuacct.usage",
            "250000000\n",
            0.25,
        ),
    ],
)
def test_the_cgroup_cpu_counter_of_a_process(
    tmp_path: Path, cgroup: str, counter: str, text: str, seconds: float
) -> None:
    proc, root = tmp_path / "proc", tmp_path / "cg"
    (proc / "42").mkdir(parents=True)
    (proc / "42" / "cgroup").write_text(cgroup)
    (root / counter).parent.mkdir(parents=True)
    (root / counter).write_text(text)
    found = cgroup_cpu_file(proc, "42", root)
    assert found == root / counter
    assert cgroup_cpu_seconds(found.name, found.read_text()) == seconds


def test_no_cgroup_is_none(tmp_path: Path) -> None:
    assert cgroup_cpu_file(tmp_path, "0") is None
    assert cgroup_cpu_file(tmp_path, "123") is None
    assert cgroup_cpu_seconds("cpu.stat", "user_usec 3\n") is None


# --- what the reports say of the engines ----------------------------------------------------
def test_every_report_names_the_engine_and_how_it_runs_each_architecture() -> None:
    from harness.html import render
    from harness.report import Report

    vm = A64FX_VM
    report = Report("linux/arm64", vm.engine)
    report.engines = [vm.to_data()]
    matrix = report.matrix(width=80)
    assert matrix.startswith("engine docker 20.10.24+dfsg1 at unix:///run/multiarch-arm64.sock: linux/arm64,\n")
    assert "/usr/libexec/qemu-binfmt/x86_64-binfmt-P (QEMU)" in matrix  # paths are not broken
    assert "  runs native arm64; emulated (QEMU) amd64; unavailable arm (asked in 12.90s)" in matrix
    assert max(len(line) for line in matrix.splitlines()) <= 80
    assert "- runs native arm64; emulated (QEMU) amd64; unavailable arm" in report.markdown()
    assert "not this machine&#x27;s kernel" in render(report) or "not this machine's kernel" in render(report)
    again = Report.from_json(report.to_json())
    assert again.engines == [vm.to_data()]
    assert again.engine_lines() == report.engine_lines()


class _Answering:
    """Just enough of a docker client for Engine's constructor: its version."""

    def version(self) -> dict[str, str]:
        return {"Version": "20.10.24", "Os": "linux", "Arch": "arm64"}


def test_what_the_survey_could_not_ask_is_not_guessed() -> None:
    from harness.engine import Engine

    failed = Engine("unix:///x.sock", client=_Answering(), survey=Survey("x", error="the probe container failed: 500"))
    native, arm, amd64 = (failed.mode(Platform.parse(p)) for p in ("linux/arm64", "linux/arm/v7", "linux/amd64"))
    assert native.kind == NATIVE
    assert "could not be asked more: the probe container failed: 500" in native.reason
    assert arm.kind == UNAVAILABLE
    assert amd64.kind == UNAVAILABLE
    assert amd64.reason == "the engine could not be asked whether it runs linux/amd64: the probe container failed: 500"
    asked = Engine(
        "unix:///y.sock", client=_Answering(), survey=Survey("y", runs={"arm64": FamilyRun("arm64", NATIVE)})
    )
    asked.wanted = {"arm64"}  # sparc64 has no program: it is not asked again, and not guessed
    sparc = asked.mode(Platform.parse("linux/sparc64"))
    assert sparc.kind == UNAVAILABLE
    assert "no sparc64 program to ask it with" in sparc.reason


# --- answers kept between runs --------------------------------------------------------------
#: ``docker info`` and ``docker version`` of bookworm's docker.io here, cut to what counts.
INFO = {
    "ID": "4ZQK:7D2V:ZJ5S:QH3V:RDHW:X6ZJ:JPZ5:6CAX:YH7U:7GNM:OFWI:Q3TS",
    "Name": "runner",
    "KernelVersion": "6.18.44-fc-v1272",
    "OperatingSystem": "Debian GNU/Linux 12 (bookworm)",
    "Architecture": "x86_64",
    "Driver": "overlay2",
    "DefaultRuntime": "runc",
    "Runtimes": {"runc": {"path": "runc"}, "io.containerd.runc.v2": {"path": "runc"}},
    "Containers": 3,
    "SystemTime": "2026-12-06T13:47:02.1Z",
}
VERSION = {"Version": "20.10.24+dfsg1", "ApiVersion": "1.41", "Os": "linux", "Arch": "amd64"}
DEBIAN_BINFMT = Path(__file__).resolve().parents[1] / "data" / "binfmt-debian"


def fake_proc(root: Path, interpreter: Path, boot: str = "6b1c6c8e-29c1-4a8e-9d55-0f3f3c9d7e21") -> Path:
    """A /proc with what the key reads: the boot's ID, and binfmt_misc as Debian's
    qemu-user-static registers it (its aarch64 entry pointing at ``interpreter``)."""
    (root / "sys/kernel/random").mkdir(parents=True)
    (root / "sys/kernel/random/boot_id").write_text(boot + "\n")
    binfmt_dir = root / "sys/fs/binfmt_misc"
    binfmt_dir.mkdir(parents=True)
    for entry in DEBIAN_BINFMT.iterdir():
        text = entry.read_text()
        if entry.name == "qemu-aarch64":
            text = "\n".join(
                f"interpreter {interpreter}" if line.startswith("interpreter ") else line for line in text.splitlines()
            )
        (binfmt_dir / entry.name).write_text(text)
    (binfmt_dir / "status").write_text("enabled\n")
    return root


@pytest.fixture
def proc(tmp_path: Path) -> Path:
    emulator = tmp_path / "qemu-aarch64"
    emulator.write_bytes(b"\x7fELF emulator")
    return fake_proc(tmp_path / "proc", emulator)


def key(proc: Path, info: dict | None = None, version: dict | None = None) -> str | None:
    return cache_key("unix:///var/run/docker.sock", info or INFO, version or VERSION, proc)


def test_a_surveys_key_holds_while_nothing_it_depends_on_changes(proc):
    first = key(proc)
    assert first is not None
    # Counts and clocks of `docker info` change by the minute: they are not the engine.
    assert key(proc, {**INFO, "Containers": 7, "SystemTime": "2026-12-06T14:00:00Z"}) == first


@pytest.mark.parametrize(
    "change",
    [
        "handler disabled",
        "handler removed",
        "handler added",
        "emulator reinstalled",
        "rebooted",
        "another engine",
        "engine upgraded",
        "runtime added",
    ],
)
def test_a_surveys_key_changes_with_what_the_answer_depends_on(proc, change):
    before = key(proc)
    info, version = dict(INFO), dict(VERSION)
    binfmt_dir = proc / "sys/fs/binfmt_misc"
    if change == "handler disabled":
        entry = binfmt_dir / "qemu-s390x"
        entry.write_text(entry.read_text().replace("enabled", "disabled", 1))
    elif change == "handler removed":
        (binfmt_dir / "qemu-riscv64").unlink()
    elif change == "handler added":
        (binfmt_dir / "rosetta").write_text(ROSETTA_ENTRY)
    elif change == "emulator reinstalled":
        interpreter = next(
            line.split(" ", 1)[1]
            for line in (binfmt_dir / "qemu-aarch64").read_text().splitlines()
            if line.startswith("interpreter ")
        )
        Path(interpreter).write_bytes(b"\x7fELF a newer emulator, same path")
    elif change == "rebooted":
        (proc / "sys/kernel/random/boot_id").write_text("0d3c79f0-5a4e-4c36-9a47-5e0d3d0b4c11\n")
    elif change == "another engine":
        info["ID"] = "SOME:OTHER:ENGINE"
    elif change == "engine upgraded":
        version["Version"] = "26.1.5+dfsg1"
    elif change == "runtime added":
        info["Runtimes"] = {**INFO["Runtimes"], "crun": {"path": "/usr/bin/crun"}}
    assert key(proc, info, version) != before


def test_no_key_without_an_engine_id_or_a_readable_kernel(proc, tmp_path):
    assert key(proc, {**INFO, "ID": ""}) is None  # podman's compatible API gives none
    assert key(tmp_path / "nowhere") is None


def surveyed(**changes: object) -> Survey:
    runs = {
        "amd64": FamilyRun("amd64", NATIVE),
        "arm64": FamilyRun("arm64", EMULATED, "QEMU", "/usr/libexec/qemu-binfmt/aarch64-binfmt-P"),
    }
    found = Survey("unix:///var/run/docker.sock", "20.10.24+dfsg1", "linux/amd64", this_kernel=True, runs=runs)
    return replace(found, seconds=0.93, exec_wall_s=0.06, **changes)


def test_a_kept_answer_comes_back_whole_and_says_when_it_was_asked(tmp_path):
    found = surveyed()
    keep(tmp_path, "k1", found)
    again = load_cached(tmp_path, "k1")
    assert again is not None
    assert again.runs == found.runs
    assert again.exec_wall_s == found.exec_wall_s
    assert again.asked_at.endswith(" UTC")
    assert "(asked in 0.93s)" in found.modes_line()
    assert f"as asked at {again.asked_at}: the engine, its kernel and binfmt_misc unchanged since" in again.modes_line()
    assert load_cached(tmp_path, "k2") is None


@pytest.mark.parametrize("why", ["not this kernel", "failed"])
def test_only_a_whole_answer_from_this_kernel_is_kept(tmp_path, why):
    """Another kernel's binfmt_misc is not in the key, and a failed survey is asked again."""
    found = surveyed(this_kernel=False) if why == "not this kernel" else surveyed(error="the probe container failed")
    keep(tmp_path, "k", found)
    assert load_cached(tmp_path, "k") is None


def test_a_damaged_kept_answer_is_asked_again(tmp_path):
    keep(tmp_path, "k", surveyed())
    (tmp_path / "k.json").write_text('{"key": "k", "survey": {"engine": 3, "runs": [1]}')
    assert load_cached(tmp_path, "k") is None
