"""Asking the engines of this machine what they run (harness.survey): bookworm's docker
and podman, both on this kernel with the QEMU handlers stack/setup.sh enabled.

Each answer is checked against this machine's own view: the programs run here directly,
through the same binfmt_misc, and the emulator each survey names is the interpreter of the
handler this kernel picks.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import docker
import pytest
from enginekit import CPU_BOUND_TEST, image_named, own_times, project, reported_command_s, run_plugin

from harness import binfmt
from harness.engine import Engine
from harness.labels import LABEL_SESSION
from harness.platform import Platform
from harness.survey import EMULATED, NATIVE, PROBE_REPO, local_emulators
from harness.tinyelf import EXITS, PROGRAMS

pytestmark = pytest.mark.engine

PODMAN = "unix:///run/multiarch-podman.sock"
HOST_RUNS = {"amd64", "386"}


@pytest.fixture(scope="module")
def programs(tmp_path_factory) -> dict[str, str]:
    where = tmp_path_factory.mktemp("programs")
    out = {}
    for table, suffix in ((PROGRAMS, ""), (EXITS, ".exit")):
        for family, program in table.items():
            path = where / f"{family}{suffix}"
            path.write_bytes(program.elf())
            path.chmod(0o755)
            out[f"{family}{suffix}"] = str(path)
    return out


@pytest.mark.parametrize("family", sorted(PROGRAMS))
def test_each_program_waits_and_its_twin_exits_here(engine, programs, family):
    """Run directly on this machine: the program stays in its system call, using no CPU,
    under the interpreter of the handler this kernel picks; its twin exits 0."""
    proc = subprocess.Popen([programs[family]])
    try:
        time.sleep(0.5)
        assert proc.poll() is None, f"{family} ended with {proc.returncode}"
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\0")
        utime, stime = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[11:13]
    finally:
        proc.kill()
        proc.wait()
    spec = PROGRAMS[family].spec
    handler = binfmt.handler_for(spec, binfmt.read_handlers())
    if family in HOST_RUNS:
        assert cmdline[0].decode() == programs[family]
    else:
        assert handler is not None
        assert cmdline[0].decode() == handler.interpreter
    assert int(utime) + int(stime) < 20, "it should sleep, not spin"
    assert subprocess.run([programs[f"{family}.exit"]], timeout=30, check=False).returncode == 0


def probe_containers(client: docker.DockerClient) -> list[str]:
    return [c["Id"] for c in client.api.containers(all=True) if c["Image"].startswith(PROBE_REPO)]


@pytest.mark.parametrize("url", ["unix:///var/run/docker.sock", PODMAN])
def test_each_engine_here_is_asked_and_agrees_with_this_machine(engine, url):
    client = docker.DockerClient(base_url=url)
    try:
        client.ping()
    except docker.errors.DockerException as exc:
        pytest.fail(f"{url} does not answer ({exc}): stack/setup.sh starts it")
    found = Engine(url).survey()
    assert not found.error
    assert found.this_kernel, "the engine runs on this machine's kernel: its PID's cmdline is found here"
    assert found.emulators == local_emulators(binfmt.read_handlers())
    assert set(found.runs) == set(PROGRAMS)
    handlers = binfmt.read_handlers()
    for family, run in found.runs.items():
        if family in HOST_RUNS:
            assert run.kind == NATIVE, run
            continue
        handler = binfmt.handler_for(PROGRAMS[family].spec, handlers)
        assert handler is not None
        assert (run.kind, run.emulator, run.interpreter) == (EMULATED, "QEMU", handler.interpreter)
    assert found.exec_wall_s is not None
    assert 0 < found.exec_wall_s < 5
    assert found.exec_cpu_s is not None
    assert 0 <= found.exec_cpu_s < found.exec_wall_s
    # Nothing left running: the probe container goes right after the answer.
    deadline = time.monotonic() + 20
    while probe_containers(client) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert probe_containers(client) == []


def test_modes_carry_how_they_were_found(engine):
    eng = Engine()
    eng.wanted = {"amd64", "arm"}
    native, arm = eng.mode(Platform.parse("linux/386")), eng.mode(Platform.parse("linux/arm/v6"))
    assert native.reason == "the engine's kernel ran the 386 probe itself"
    assert arm.reason.endswith("seen running the arm probe in the engine, CPU arm1176")
    assert dict(arm.env) == {"QEMU_CPU": "arm1176"}


def test_under_xdist_the_controller_asks_once_and_the_slowdown_is_the_loops_own(samples, tmp_path_factory):
    """One probe container for the whole -n 2 run, however many workers (a cache of its
    own: none kept from an earlier run); and the reported slowdown of a CPU-bound test
    within 25% of the ratio of its loop's own times."""
    where = project(tmp_path_factory, "asked-once", {"test_cpu.py": CPU_BOUND_TEST.format(steps=400000)})
    own_file = where / "own.jsonl"
    session = f"asked-once-{os.getpid()}"
    since = time.time() - 1
    result, data = run_plugin(
        where,
        "--image",
        samples["good"],
        "--platforms",
        "linux/amd64,linux/arm64,linux/s390x",
        "-n",
        "2",
        "--multiarch-session-id",
        session,
        env={"OWN_TIMES": str(own_file), "MULTIARCH_CACHE_DIR": str(where / "cache")},
    )
    until = time.time() + 1
    assert result.ret == 0, "\n".join(result.outlines[-30:])
    client = docker.from_env()
    events = client.api.events(since=since, until=until, decode=True, filters={"type": "container", "event": "create"})
    made = [
        e
        for e in events
        if str(e.get("from", "")).startswith(PROBE_REPO)
        and e.get("Actor", {}).get("Attributes", {}).get(LABEL_SESSION) == session
    ]
    assert len(made) == 1, made
    assert any(
        line.startswith("multiarch:   runs native amd64; emulated (QEMU) arm64 s390x") for line in result.outlines
    )
    own = own_times(own_file)
    reported = reported_command_s(image_named(data, samples["good"]), "test_cpu_bound")
    for platform in ("linux/arm64", "linux/s390x"):
        own_ratio = own[platform] / own["linux/amd64"]
        reported_ratio = reported[platform] / reported["linux/amd64"]
        assert abs(reported_ratio / own_ratio - 1) <= 0.25, (platform, own, reported)
    assert data["engines"][0]["this_kernel"] is True
    assert os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock") in data["engines"][0]["engine"]


def test_the_engines_answers_are_kept_for_the_next_run_on_this_kernel(engine, tmp_path, no_leftovers):
    """A survey of an engine on this machine's kernel is kept in the cache: the next run on
    the same cache (and engine, kernel boot and binfmt_misc) starts no probe container, and
    says when the answers were asked. Another cache asks again."""
    from harness import Harness
    from harness.registry import Registry

    platforms = "linux/amd64,linux/arm64,linux/s390x"

    def survey(cache: Path, session: str):
        since = time.time() - 1
        with Harness(platforms, registry=Registry(cache), session_id=session) as h:
            found = h.engine.survey()
        created = engine.events(
            since=since,
            until=time.time() + 1,
            filters={"type": "container", "event": "create", "label": f"{LABEL_SESSION}={session}"},
            decode=True,
        )
        return found, len(list(created))

    first, probes = survey(tmp_path / "cache", "keep-first")
    assert first.this_kernel
    assert not first.error
    assert not first.asked_at
    assert probes == 1
    second, probes = survey(tmp_path / "cache", "keep-second")
    assert probes == 0, "the kept answers were asked again"
    assert second.asked_at
    assert second.runs == first.runs
    assert second.emulators == first.emulators
    assert "as asked at" in second.modes_line()
    third, probes = survey(tmp_path / "other-cache", "keep-third")
    assert probes == 1
    assert not third.asked_at
