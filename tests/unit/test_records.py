"""Records: what crosses pytest-xdist, read back as it was sent; and how the controller
counts a test or a check whose worker crashed in it."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from harness.engine import Mode
from harness.planner import Target
from harness.platform import Platform
from harness.records import CheckRecord, CoverageRecord, ProbeRecord, ResolveRecord, Subject, TestRecord, from_data
from plugins import options
from plugins.plugin import _test_name
from plugins.reporting import RECORD, Reporter
from plugins.state import State

IMAGE = "127.0.0.1:5000/samples/good:1.0"
ARM = Platform("linux", "arm", "v7")
SUBJECT = Subject(IMAGE, "sha256:i", ARM, "sha256:d", "emulated", "qemu", None, 2)
RECORDS = [
    CheckRecord(SUBJECT, "elf", "passed", "700 ELF files", 0.5, ("a warning",), ""),
    TestRecord(SUBJECT, "t.py::test_a[*]", "t.py::test_a[linux/arm/v7]", "failed", "assert 1", 0.25, 0.1),
    ProbeRecord(SUBJECT, {"shell": 0.02}),
    CoverageRecord(IMAGE, "sha256:i", "failed", "missing", (ARM,), (Platform("plan9", "amd64"),), (ARM,), True, ()),
    ResolveRecord(IMAGE, "no such image"),
]


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: r.kind)
def test_a_record_survives_the_wire(record):
    assert from_data(json.loads(json.dumps(record.to_data()))) == record


def test_an_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="not a multiarch record"):
        from_data({"kind": "vibes"})


def _reporter() -> Reporter:
    opts = options.Options(images=(IMAGE,), images_source="", platforms=None, platforms_source="", json_path=None)
    return Reporter(State(opts, "s", False))


def _report(nodeid: str, outcome: str, record=None) -> pytest.TestReport:
    report = pytest.TestReport(nodeid, ("multiarch", None, ""), {}, outcome, "worker 'gw0' crashed", "call")
    if record is not None:
        setattr(report, RECORD, record.to_data())
    return report


@pytest.mark.parametrize("record", RECORDS[:2], ids=lambda r: r.kind)
def test_a_worker_crash_fails_the_test_or_check_it_happened_in(record):
    reporter = _reporter()
    reporter.pytest_runtest_logreport(_report("n", "passed", record))  # the worker sent its record
    reporter.pytest_runtest_logreport(_report("n", "failed"))  # then xdist's report of the crash
    plat = reporter.report.images[IMAGE].platforms["linux/arm/v7"]
    got = plat.checks["elf"] if isinstance(record, CheckRecord) else plat.tests[record.name]
    assert got.outcome == "failed"
    assert plat.failed


def test_a_test_name_leaves_out_the_targets_id_only():
    """A fixture parameter whose id looks like a platform stays: the same test pairs across platforms."""
    state = SimpleNamespace(opts=SimpleNamespace(images=(IMAGE,)))
    names = set()
    for platform in ("linux/amd64", "linux/arm64"):
        target = Target(IMAGE, "sha256:i", Platform.parse(platform), "sha256:d", Mode("native", ""))
        ids = f"linux/amd64-{platform}"  # the fixture's parameter, then the target's
        item = SimpleNamespace(
            callspec=SimpleNamespace(id=ids), nodeid=f"t.py::test_b[{ids}]", iter_markers=lambda _: []
        )
        names.add(_test_name(item, target, state))
    assert names == {"t.py::test_b[linux/amd64-*]"}
