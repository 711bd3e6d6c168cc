"""The pieces a cold run overlaps its work with: work done once per key, background work by
rank, the timings and what a progress display reads of them, and the archive a load
streams into the engine."""

from __future__ import annotations

import io
import json
import tarfile
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from harness import Harness
from harness.checks import PASSED, CheckResult
from harness.engine import NATIVE, EngineError, Mode, _archive, _count_bytes
from harness.once import Once, waiter
from harness.planner import Target
from harness.platform import Platform
from harness.pool import ContainerPool
from harness.prefetch import Prefetcher
from harness.registry import Registry
from harness.timings import Timings, merge, table
from plugins.progress import mode_for


# --- Once ---------------------------------------------------------------------------------------
def test_once_makes_a_key_once_while_others_wait_and_keys_run_side_by_side():
    once: Once[str, int] = Once()
    made: list[str] = []
    both_inside = threading.Barrier(2, timeout=5)

    def make(key: str) -> int:
        made.append(key)
        if key in ("a", "b"):
            both_inside.wait()  # "a" and "b" are made at the same time, or this times out
        time.sleep(0.05)
        return len(key)

    results: list[int] = []
    threads = [threading.Thread(target=lambda k=k: results.append(once.get(k, lambda: make(k)))) for k in "aab"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(made) == ["a", "b"]
    assert results == [1, 1, 1]


def test_once_keeps_a_failure_unless_told_not_to():
    kept: Once[str, int] = Once()
    calls = []

    def fail() -> int:
        calls.append(1)
        raise EngineError("no")

    for _ in range(2):
        with pytest.raises(EngineError):
            kept.get("k", fail)
    assert len(calls) == 1
    retried: Once[str, int] = Once(keep_errors=False)
    with pytest.raises(EngineError):
        retried.get("k", fail)
    assert retried.get("k", lambda: 7) == 7


def test_once_forgets_only_the_value_it_is_told_of():
    once: Once[str, object] = Once()
    first = once.get("k", object)
    once.forget("k", object())  # another value: kept
    assert once.get("k", object) is first
    once.forget("k", first)
    assert once.get("k", object) is not first


def test_a_waiter_ticks_while_it_waits():
    once: Once[str, int] = Once()
    release = threading.Event()
    ticks: list[float] = []
    maker = threading.Thread(target=lambda: once.get("k", lambda: release.wait(5) and 3))
    maker.start()
    while not once.started("k"):
        time.sleep(0.01)
    threading.Timer(0.7, release.set).start()
    assert once.get("k", lambda: 0, waiter(lambda: lambda: ticks.append(time.monotonic()))) == 3
    maker.join()
    assert len(ticks) >= 2


# --- Prefetcher -----------------------------------------------------------------------------------
def test_background_work_goes_by_rank_not_by_order_asked():
    done: list[str] = []
    gate = threading.Event()
    prefetch = Prefetcher(1)
    prefetch.submit((0, 0), lambda: gate.wait(5))  # holds the only thread while the rest queue up
    prefetch.submit((2, 1), lambda: done.append("audit 2"))
    prefetch.submit((1, 1), lambda: done.append("audit 1"))
    prefetch.submit((2, 0), lambda: done.append("container 2"))
    prefetch.submit((1, 0), lambda: done.append("container 1"))
    gate.set()
    deadline = time.monotonic() + 5
    while len(done) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    prefetch.close()
    assert done == ["container 1", "audit 1", "container 2", "audit 2"]


def test_closing_drops_what_is_queued_waits_for_what_runs_and_refuses_more():
    started, finished, dropped = threading.Event(), threading.Event(), []
    prefetch = Prefetcher(1)

    def slow() -> None:
        started.set()
        time.sleep(0.3)
        finished.set()

    prefetch.submit((0,), slow)
    prefetch.submit((1,), lambda: dropped.append("ran"))
    started.wait(5)
    prefetch.close()
    assert finished.is_set()
    assert not dropped
    prefetch.submit((0,), lambda: dropped.append("after close"))
    time.sleep(0.1)
    assert not dropped


class Stoppable:
    def __init__(self, platform: str) -> None:
        self.platform = platform
        self.stopped = 0

    def stop(self) -> None:
        self.stopped += 1


def test_a_released_container_whose_removal_was_dropped_is_removed_and_timed_at_the_end():
    pool = ContainerPool(None, None, lambda: Platform.parse("linux/amd64"), "s", 10.0)  # type: ignore[arg-type]
    targets = [TARGET, replace(TARGET, platform=Platform.parse("linux/s390x"))]
    containers = [Stoppable(str(t.platform)) for t in targets]
    for target, container in zip(targets, containers, strict=True):
        pool._containers.get(target.key, lambda c=container: c)
        pool._owners[id(container)] = (target.image, container.platform)
    gate, background = threading.Event(), Prefetcher(1)
    background.submit((0,), lambda: gate.wait(5))  # the only thread is busy: the removals queue up
    for target, container in zip(targets, containers, strict=True):
        assert pool.release(target) is container
        background.submit((1,), lambda c=container: pool.remove(c))
    threading.Timer(0.2, gate.set).start()
    pool.close([], [background])  # what was queued is dropped: the end removes it
    assert [c.stopped for c in containers] == [1, 1]
    for target in targets:
        assert "cleanup" in pool.timings.seconds(target.image, str(target.platform))
    pool.remove(containers[0])  # a removal that comes late does nothing
    assert containers[0].stopped == 1


def test_a_failure_in_the_background_does_not_stop_the_rest():
    done: list[int] = []
    prefetch = Prefetcher(1)
    prefetch.submit((0,), lambda: 1 / 0)
    prefetch.submit((1,), lambda: done.append(1))
    deadline = time.monotonic() + 5
    while not done and time.monotonic() < deadline:
        time.sleep(0.01)
    prefetch.close()
    assert done == [1]


# --- Timings --------------------------------------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_timings_add_up_per_phase_and_say_when_each_platform_was_ready():
    clock = Clock()
    timings = Timings(clock)
    with timings.span("img", "", "resolve"):
        clock.now += 0.5
    with timings.span("img", "linux/arm64", "pull"):
        clock.now += 3.0
    timings.add("img", "linux/arm64", "tests", 1.0)
    timings.add("img", "linux/arm64", "tests", 2.0)
    timings.ready("img", "linux/arm64")
    clock.now += 5
    timings.ready("img", "linux/arm64")  # the first time counts
    assert timings.to_data() == {
        "img": {"resolve_s": 0.5, "platforms": {"linux/arm64": {"pull_s": 3.0, "tests_s": 3.0, "ready_s": 3.5}}}
    }
    assert timings.take_ready() == [("img", "linux/arm64", 3.5)]
    assert timings.take_ready() == []


def test_the_status_says_what_is_under_way_and_forgets_what_ended():
    timings = Timings()
    with timings.span("img", "linux/arm64", "pull"), timings.span("img", "linux/s390x", "audit"):
        timings.progress("img", "linux/arm64", 120_000_000, 410_000_000)
        with timings.span("img", "linux/amd64", "pull", shown="load"):
            assert timings.status() == "loading linux/amd64; pulling linux/arm64 120/410 MB; auditing linux/s390x"
    assert timings.status() == ""


def test_workers_timings_merge_by_adding_seconds_and_keeping_the_first_ready():
    one = {"img": {"resolve_s": 0.2, "platforms": {"linux/amd64": {"tests_s": 1.0, "ready_s": 4.0}}}}
    two = {"img": {"platforms": {"linux/amd64": {"tests_s": 2.0, "ready_s": 3.0}, "linux/386": {"pull_s": 1.5}}}}
    merged = merge(merge({}, one), two)
    assert merged == {
        "img": {
            "resolve_s": 0.2,
            "platforms": {"linux/amd64": {"tests_s": 3.0, "ready_s": 3.0}, "linux/386": {"pull_s": 1.5}},
        }
    }


def test_the_table_has_a_row_per_platform_in_platform_order_and_a_dash_for_what_is_missing():
    data = {
        "wall_s": 12.0,
        "images": {
            "127.0.0.1:5000/app:1": {
                "resolve_s": 0.25,
                "platforms": {"linux/s390x": {"pull_s": 2.0}, "linux/amd64": {"pull_s": 1.0, "ready_s": 1.5}},
            }
        },
    }
    text = table(data, 12.0)
    lines = text.splitlines()
    assert lines[0] == "seconds per platform (phases overlap); resolving the index: 0.2s; the whole run: 12.0s"
    assert lines[1].split() == [
        "platform",
        *("ready", "audit", "pull", "start", "wait", "checks", "tests", "probe", "cleanup"),
    ]
    assert lines[3].split() == ["linux/amd64", "1.5", "-", "1.0", "-", "-", "-", "-", "-", "-"]
    assert lines[4].split()[:3] == ["linux/s390x", "-", "-"]


# --- feeding the engine -----------------------------------------------------------------------------
def test_the_archive_a_load_streams_is_what_docker_save_writes(tmp_path: Path):
    config, layer = tmp_path / "config", tmp_path / "layer"
    config.write_bytes(b'{"architecture": "arm64"}')
    layer.write_bytes(b"x" * 3000)
    data = b"".join(_archive([config, layer], "sha256:" + "c" * 64, ["sha256:" + "1" * 64]))
    assert len(data) % 512 == 0
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        names = tar.getnames()
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
        assert tar.extractfile("1" * 64 + "/layer.tar").read() == b"x" * 3000  # type: ignore[union-attr]
    assert names == ["manifest.json", "c" * 64 + ".json", "1" * 64 + "/layer.tar"]
    assert manifest == [{"Config": "c" * 64 + ".json", "RepoTags": None, "Layers": ["1" * 64 + "/layer.tar"]}]


def test_a_load_breaks_off_when_the_run_ends(tmp_path: Path):
    config, layer = tmp_path / "config", tmp_path / "layer"
    config.write_bytes(b"{}")
    layer.write_bytes(b"x" * 10)
    stop = threading.Event()
    stream = _archive([config, layer], "sha256:" + "c" * 64, ["sha256:" + "1" * 64], stop)
    next(stream)
    stop.set()
    with pytest.raises(EngineError, match="broken off"):
        list(stream)


def test_pull_progress_sums_the_layers_as_the_engine_reports_them():
    seen: list[tuple[int, int]] = []
    layers: dict[str, tuple[int, int]] = {}
    events = [
        {"status": "Pulling fs layer", "id": "a"},
        {"status": "Downloading", "id": "a", "progressDetail": {"current": 10, "total": 100}},
        {"status": "Downloading", "id": "b", "progressDetail": {"current": 5, "total": 50}},
        {"status": "Download complete", "id": "a", "progressDetail": {}},
        {"status": "Digest: sha256:abc"},
    ]
    for event in events:
        _count_bytes(event, layers, lambda done, total: seen.append((done, total)))
    assert seen == [(10, 100), (15, 150), (105, 150)]


# --- progress ------------------------------------------------------------------------------------
def test_progress_is_lines_in_ci_and_as_asked_otherwise(monkeypatch: pytest.MonkeyPatch, pytestconfig: pytest.Config):
    monkeypatch.setenv("CI", "true")
    assert mode_for("auto", pytestconfig) == "lines"
    assert mode_for("status", pytestconfig) == "status"
    assert mode_for("off", pytestconfig) == "off"
    monkeypatch.setenv("CI", "")
    monkeypatch.setattr("sys.stdout.isatty", lambda: False)
    assert mode_for("auto", pytestconfig) == "lines"


# --- checks run ahead of their items ------------------------------------------------------------
def counted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *outcomes: object) -> tuple[Harness, list[str]]:
    """A harness whose checks give ``outcomes`` in turn (an exception is raised), and the
    names they were run for."""
    harness = Harness("linux/arm64", registry=Registry(tmp_path))
    runs: list[str] = []
    left = list(outcomes)

    def run(name: str, target: Target) -> CheckResult:
        runs.append(name)
        outcome = left.pop(0) if left else CheckResult(PASSED, f"{name} ran")
        if isinstance(outcome, Exception):
            raise outcome
        assert isinstance(outcome, CheckResult)
        return outcome

    monkeypatch.setattr(harness, "_check", run)
    monkeypatch.setattr(harness, "_works_beside", lambda target: True)  # an engine on this kernel
    return harness, runs


TARGET = Target(
    "127.0.0.1:5000/samples/good:1.0",
    "sha256:" + "a" * 64,
    Platform.parse("linux/arm64"),
    "sha256:" + "b" * 64,
    Mode(NATIVE, "test"),
)


def test_a_check_run_ahead_is_what_its_item_reports_and_is_not_run_again(tmp_path, monkeypatch):
    harness, runs = counted(tmp_path, monkeypatch, CheckResult(PASSED, "ahead"))
    harness._check_early("uname", TARGET)
    assert harness.check("uname", TARGET).detail == "ahead"
    assert runs == ["uname"]
    assert harness.check("uname", TARGET).detail == "uname ran"  # asked again, run again
    assert runs == ["uname", "uname"]


def test_a_check_whose_item_came_first_is_not_run_ahead_after_it(tmp_path, monkeypatch):
    harness, runs = counted(tmp_path, monkeypatch)
    harness.check("elf", TARGET)
    harness._check_early("elf", TARGET)
    assert runs == ["elf"]


def test_a_check_that_failed_ahead_is_run_again_by_its_item(tmp_path, monkeypatch):
    """What the background met (an engine that broke off, say) is met again where it is
    reported: the item's own run is the result."""
    harness, runs = counted(tmp_path, monkeypatch, EngineError("the engine stopped answering"))
    harness._check_early("uname", TARGET)
    assert harness.check("uname", TARGET).detail == "uname ran"
    assert runs == ["uname", "uname"]


def test_an_item_waits_for_its_check_under_way_ahead(tmp_path, monkeypatch):
    harness = Harness("linux/arm64", registry=Registry(tmp_path))
    inside, release = threading.Event(), threading.Event()
    runs: list[str] = []

    def slow(name: str, target: Target) -> CheckResult:
        runs.append(name)
        inside.set()
        assert release.wait(5)
        return CheckResult(PASSED, "ahead, after a while")

    monkeypatch.setattr(harness, "_check", slow)
    monkeypatch.setattr(harness, "_works_beside", lambda target: True)
    ahead = threading.Thread(target=harness._check_early, args=("uname", TARGET))
    ahead.start()
    assert inside.wait(5)
    got: list[CheckResult] = []
    item = threading.Thread(target=lambda: got.append(harness.check("uname", TARGET)))
    item.start()
    time.sleep(0.1)
    assert not got  # waiting, not running it a second time
    release.set()
    item.join(5)
    ahead.join(5)
    assert [r.detail for r in got] == ["ahead, after a while"]
    assert runs == ["uname"]


def test_nothing_runs_ahead_where_a_commands_time_is_its_wall_time(tmp_path, monkeypatch):
    """An engine not on this kernel (a VM, another host): what ran beside a test would
    lengthen its measured time, so its checks run in their turn."""
    harness, runs = counted(tmp_path, monkeypatch)
    monkeypatch.setattr(harness, "_works_beside", lambda target: False)
    harness._check_early("uname", TARGET)
    assert runs == []
    assert harness.check("uname", TARGET).detail == "uname ran"


def test_a_container_stays_to_the_end_where_its_removal_would_lengthen_the_next_tests(tmp_path, monkeypatch):
    harness = Harness("linux/arm64", registry=Registry(tmp_path))
    container = Stoppable("linux/arm64")
    harness.pool._containers.get(TARGET.key, lambda: container)
    monkeypatch.setattr(harness, "_works_beside", lambda target: False)  # an engine in a VM, say
    harness.release(TARGET)
    assert harness.pool.started(TARGET)
    monkeypatch.setattr(harness, "_works_beside", lambda target: True)  # an engine on this kernel
    harness.release(TARGET)
    assert not harness.pool.started(TARGET)
    harness.close()
    assert container.stopped == 1
