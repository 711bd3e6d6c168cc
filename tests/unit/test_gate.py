from __future__ import annotations

import contextlib
import copy
import io
import json
import tempfile
from pathlib import Path

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.checks import check_names
from harness.gate import EXIT_GO, EXIT_NO_GO, EXIT_UNUSABLE, SCHEMA_FILE, judge, main, reasons

CHECKS = check_names()

D = "sha256:" + "a" * 64
#: A report a real run wrote: good sample, amd64 native, arm64 and arm/v6 emulated, two
#: tests, --max-slowdown 50. Every mutation below starts from it.
GREEN = json.loads((Path(__file__).parents[1] / "data" / "green-report.json").read_text())
GREEN_PLATFORMS = [p["platform"] for p in GREEN["images"][0]["platforms"]]


def plat(name, mode="emulated", checks="passed", tests=("passed",), slowdown=2.0):
    return {
        "platform": name,
        "digest": D,
        "mode": mode,
        "mode_reason": "r",
        "engine": "docker",
        "selected_tests": len(tests),
        "checks": {c: {"outcome": checks, "detail": f"{c} says so"} for c in CHECKS},
        "tests": [{"nodeid": f"t.py::t{i}[{name}]", "outcome": o, "duration_s": 0.1} for i, o in enumerate(tests)],
        "slowdown": slowdown,
        "slowdown_samples": 3,
    }


def report(*plats, missing=(), incomplete=()):
    return {
        "schema": 1,
        "complete": not incomplete,
        "incomplete": list(incomplete),
        "run": {
            "command": ["pytest"],
            "started": "2026-12-01T00:00:00Z",
            "finished": "2026-12-01T00:00:01Z",
            "harness_version": "0.1.0",
            "exit_status": 0,
            "selected": 1,
            "deselected": [],
            "settings": {},
            "other_tests": {"passed": 0, "failed": 0, "skipped": 0},
        },
        "host": {"platform": "linux/amd64", "engine": "docker", "emulated": []},
        "images": [
            {
                "ref": "r/app:1",
                "digest": D,
                "missing_platforms": list(missing),
                "present_platforms": [p["platform"] for p in plats],
                "requested_platforms": [p["platform"] for p in plats] + list(missing),
                "is_index": True,
                "notes": [],
                "checks": {
                    "provenance": {
                        "outcome": "passed",
                        "detail": "they agree",
                        "platforms": {p["platform"]: {"digest": D, "attestations": []} for p in plats},
                    }
                },
                "platforms": list(plats),
            }
        ],
    }


def test_schema_accepts_a_report_and_refuses_a_broken_one():
    schema = json.loads(SCHEMA_FILE.read_text())
    jsonschema.validate(report(plat("linux/amd64", "native", slowdown=1.0)), schema)
    jsonschema.validate(GREEN, schema)
    broken = report(plat("linux/amd64"))
    broken["images"][0]["platforms"][0]["mode"] = "maybe"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)


def test_schema_names_every_built_in_check():
    schema = json.loads(SCHEMA_FILE.read_text())
    names = schema["$defs"]["platformResult"]["properties"]["checks"]["propertyNames"]["enum"]
    assert set(names) == {*CHECKS, "slowdown"}


def test_green_reports_pass():
    assert reasons(report(plat("linux/amd64", "native", slowdown=1.0), plat("linux/arm64"))) == []
    verdict = judge(GREEN, require=GREEN_PLATFORMS, max_slowdown=50)
    assert verdict.go, verdict.reasons
    assert verdict.passed == [(GREEN["images"][0]["ref"], GREEN["images"][0]["digest"], GREEN_PLATFORMS)]


@pytest.mark.parametrize(
    ("doc", "says"),
    [
        (report(plat("linux/arm64", checks="failed")), "linux/arm64: config failed: config says so"),
        (report(plat("linux/arm64", tests=("passed", "failed"))), "1 test(s) did not pass: t.py::t1[linux/arm64]"),
        (report(plat("linux/arm64", tests=("skipped",))), "1 test(s) did not pass"),
        (report(plat("linux/amd64"), missing=["linux/arm64"]), "linux/arm64 is missing from the index"),
        (report(plat("windows/amd64", mode="unavailable")), "windows/amd64: not run here (r)"),
        (report(plat("linux/arm64"), incomplete=["interrupted"]), "the run was incomplete: interrupted"),
        (report(), "r/app:1: no platform was tested"),
        (report(plat("linux/arm64", checks="skipped")), "config was skipped (config says so)"),
    ],
)
def test_red_reports_say_why(doc, says):
    assert any(says in r for r in reasons(doc)), reasons(doc)


def test_a_skip_counts_only_for_the_reasons_the_contract_lists():
    doc = report(plat("linux/arm64"))
    uname = doc["images"][0]["platforms"][0]["checks"]["uname"]
    uname.update(outcome="skipped", detail="the image has no uname on its PATH", skip="no-uname")
    assert reasons(doc) == []
    uname["skip"] = "no-elf-files"  # a reason, but not uname's
    assert reasons(doc) == [
        "r/app:1 linux/arm64: uname was skipped (the image has no uname on its PATH); "
        "it may be skipped only for: no-uname"
    ]


def test_a_missing_check_or_test_count_is_refused():
    doc = report(plat("linux/arm64", tests=("passed", "passed")))
    platform = doc["images"][0]["platforms"][0]
    del platform["checks"]["elf"]
    platform["tests"].pop()
    assert reasons(doc) == [
        "r/app:1 linux/arm64: the elf check did not run",
        "r/app:1 linux/arm64: 2 test(s) were selected but 1 reported",
    ]
    del platform["selected_tests"]
    assert "does not say how many tests were selected" in reasons(doc)[-1]


def test_require_and_max_slowdown():
    doc = report(plat("linux/amd64", "native", slowdown=1.0), plat("linux/s390x", slowdown=6.5))
    assert reasons(doc, require=["linux/amd64"]) == []
    assert reasons(doc, require=["linux/amd64", "linux/arm64"]) == [
        "r/app:1: required platform linux/arm64 was not tested"
    ]
    assert reasons(doc, max_slowdown=5) == ["r/app:1 linux/s390x: slowdown 6.5x is above --max-slowdown 5"]
    doc["images"][0]["platforms"][1]["slowdown"] = None
    assert reasons(doc, max_slowdown=5) == [
        "r/app:1 linux/s390x: slowdown not measured, so --max-slowdown 5 is not met"
    ]


def test_the_run_limit_must_have_been_checked():
    doc = report(plat("linux/arm64"))
    doc["max_slowdown"] = 8
    assert reasons(doc) == [
        "r/app:1 linux/arm64: the run asked for --max-slowdown 8 but no slowdown check is in the report"
    ]


def test_cli_exit_codes(tmp_path, capsys):
    good = tmp_path / "good.json"
    good.write_text(json.dumps(report(plat("linux/arm64"))))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(report(plat("linux/arm64", checks="failed"))))
    assert main(["gate", str(good)]) == EXIT_GO
    assert f"r/app:1 @ {D} passed on linux/arm64" in capsys.readouterr().out
    assert main(["gate", str(bad)]) == EXIT_NO_GO
    assert "release must not go out" in capsys.readouterr().out
    assert main(["gate", str(tmp_path / "none.json")]) == EXIT_UNUSABLE
    assert "cannot read the report" in capsys.readouterr().err
    assert main(["gate", str(good), "--require", "linux/amd46"]) == EXIT_UNUSABLE
    assert "did you mean linux/amd64" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("not json", "not JSON"),
        ('{"schema": 2, "images": []}', "not a schema-1 multiarch report"),
        ('{"schema": 1, "images": [{"ref": "x"}]}', "does not follow the report schema"),
    ],
)
def test_unusable_reports_exit_2(tmp_path, capsys, text, says):
    path = tmp_path / "r.json"
    path.write_text(text)
    assert main(["gate", str(path)]) == EXIT_UNUSABLE
    assert says in capsys.readouterr().err


def test_single_image_is_said(tmp_path, capsys):
    doc = report(plat("linux/arm64"))
    doc["images"][0]["is_index"] = False
    path = tmp_path / "r.json"
    path.write_text(json.dumps(doc))
    assert main(["gate", str(path)]) == EXIT_GO
    assert "note: r/app:1 is a single image, not a manifest list" in capsys.readouterr().out


# --- the property: "go" only for a report that still proves a complete green run ----------------
def _platforms(doc):
    return [p for i in doc["images"] for p in i["platforms"]]


def _pick(data, items):
    return items[data.draw(st.integers(0, len(items) - 1))]


def _check_names(p):
    return [c for c in p["checks"] if c in CHECKS or c == "slowdown"]


# Each mutation takes (doc, data) and changes doc in place. Harmful ones take away part of the
# proof; benign ones change nothing the proof rests on, and never undo a harmful one.
def _drop_top(doc, data):
    del doc[_pick(data, ["complete", "run", "images", "schema"])]


def _incomplete(doc, data):
    if data.draw(st.booleans()):
        doc["complete"] = data.draw(st.sampled_from([False, None, 0, "yes"]))
    else:
        doc["incomplete"].append(data.draw(st.sampled_from(["interrupted (KeyboardInterrupt)", "x"])))


def _deselect(doc, data):
    doc["run"]["deselected"].append("test_x.py::test_gone")


def _other_failed(doc, data):
    doc["run"]["other_tests"]["failed"] = data.draw(st.integers(1, 5))


def _drop_platform(doc, data):
    plats = doc["images"][0]["platforms"]
    plats.pop(data.draw(st.integers(0, len(plats) - 1)))


def _missing_platform(doc, data):
    doc["images"][0]["missing_platforms"].append("linux/s390x")


def _image_error(doc, data):
    doc["images"][0]["error"] = "could not resolve"


def _no_digest(doc, data):
    if data.draw(st.booleans()):
        doc["images"][0]["digest"] = None
    else:
        del doc["images"][0]["digest"]


def _drop_check(doc, data):
    p = _pick(data, _platforms(doc))
    del p["checks"][_pick(data, _check_names(p))]


def _bad_check(doc, data):
    p = _pick(data, _platforms(doc))
    check = p["checks"][_pick(data, _check_names(p))]
    check["outcome"] = data.draw(st.sampled_from(["failed", "skipped", "weird", "", None]))
    check.pop("skip", None)  # a skip for an allowed reason (libs on a static image) passes: not this one


def _bad_test(doc, data):
    p = _pick(data, _platforms(doc))
    test = _pick(data, p["tests"])
    test["outcome"] = data.draw(st.sampled_from(["failed", "skipped", "error", "weird"]))


def _drop_test(doc, data):
    p = _pick(data, _platforms(doc))
    p["tests"].pop(data.draw(st.integers(0, len(p["tests"]) - 1)))


def _duplicate_test(doc, data):
    p = _pick(data, _platforms(doc))
    p["tests"][-1] = copy.deepcopy(p["tests"][0])


def _selected_count(doc, data):
    p = _pick(data, _platforms(doc))
    if data.draw(st.booleans()):
        del p["selected_tests"]
    else:
        p["selected_tests"] = len(p["tests"]) + data.draw(st.integers(1, 3))


def _bad_mode(doc, data):
    _pick(data, _platforms(doc))["mode"] = data.draw(st.sampled_from(["unavailable", "maybe"]))


def _slow(doc, data):
    p = _pick(data, _platforms(doc))
    p["slowdown"] = data.draw(st.sampled_from([None, 50.5, 1e6]))


def _bad_digest(doc, data):
    target = _pick(data, [doc["images"][0], *_platforms(doc)])
    target["digest"] = data.draw(st.sampled_from(["sha256:1234", "latest", "", 7]))


def _exit_status(doc, data):
    doc["run"]["exit_status"] = data.draw(st.sampled_from([1, 2, None]))


def _drop_run_field(doc, data):
    del doc["run"][data.draw(st.sampled_from(["other_tests", "selected", "deselected", "settings"]))]


def _drop_requested(doc, data):
    del doc["images"][0]["requested_platforms"]


def _unknown_check(doc, data):
    _pick(data, _platforms(doc))["checks"]["vibes"] = {"outcome": "passed", "detail": "fine"}


def _image_check(doc, data):
    checks = doc["images"][0]["checks"]
    if data.draw(st.booleans()):
        del checks["provenance"]
    else:
        checks["provenance"]["outcome"] = data.draw(st.sampled_from(["failed", "skipped", "weird"]))


def _baseline_not_run(doc, data):
    doc["run"]["settings"]["baselines"] = {data.draw(st.sampled_from(["*", doc["images"][0]["ref"]])): "r/app:0"}


HARMFUL = [
    _drop_top,
    _incomplete,
    _deselect,
    _other_failed,
    _drop_platform,
    _missing_platform,
    _image_error,
    _no_digest,
    _drop_check,
    _bad_check,
    _bad_test,
    _drop_test,
    _duplicate_test,
    _selected_count,
    _bad_mode,
    _slow,
    _bad_digest,
    _unknown_check,
    _image_check,
    _baseline_not_run,
    _exit_status,
    _drop_run_field,
    _drop_requested,
]


def _reword(doc, data):
    p = _pick(data, _platforms(doc))
    p["checks"][_pick(data, _check_names(p))]["detail"] = data.draw(st.text(max_size=20))
    p["mode_reason"] = data.draw(st.text(max_size=20))


def _timings(doc, data):
    p = _pick(data, _platforms(doc))
    for t in p["tests"]:
        t["duration_s"] = data.draw(st.floats(0, 100))
    p["probe_s"] = {"shell": data.draw(st.floats(0, 10))}
    doc["run"]["started"] = data.draw(st.text(max_size=10))


def _reorder(doc, data):
    doc["images"][0]["platforms"].reverse()
    for p in _platforms(doc):
        p["tests"].reverse()


def _faster(doc, data):
    p = _pick(data, _platforms(doc))
    if not isinstance(p["slowdown"], float) or p["slowdown"] > 50:
        raise KeyError("slowdown")  # a harmful step made it so: leave it, never repair it
    p["slowdown"] = data.draw(st.floats(0.5, 50))


def _extra_fields(doc, data):
    doc["x-extra"] = data.draw(st.integers())
    doc["images"][0]["notes"].append(data.draw(st.text(max_size=10)))
    doc["host"]["engine"] = data.draw(st.text(max_size=10))


def _other_index(doc, data):
    if not str(doc["images"][0]["digest"]).startswith("sha256:") or len(doc["images"][0]["digest"]) != 71:
        raise KeyError("digest")  # a harmful step made it so: leave it, never repair it
    doc["images"][0]["digest"] = "sha256:" + data.draw(st.text("0123456789abcdef", min_size=64, max_size=64))


BENIGN = [_reword, _timings, _reorder, _faster, _extra_fields, _other_index]


def gate_exit(doc, *args: str) -> int:
    with tempfile.TemporaryDirectory() as where:
        path = Path(where) / "r.json"
        path.write_text(json.dumps(doc))
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            return main(["gate", str(path), *args])


#: The gate as a release job calls it: with the platforms it must have, and without (then
#: the report's own record of what was to be tested is all it has).
GATE_CALLS = [("--require", ",".join(GREEN_PLATFORMS), "--max-slowdown", "50"), ()]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_gate_says_go_only_while_the_report_still_proves_a_green_run(data):
    doc = copy.deepcopy(GREEN)
    steps = []
    for step in data.draw(st.lists(st.sampled_from(HARMFUL + BENIGN), min_size=1, max_size=4), label="mutations"):
        try:
            step(doc, data)
        except (KeyError, IndexError, TypeError, AttributeError):
            continue  # an earlier (harmful) step took away what this one changes
        steps.append(step)
    harmful = [s.__name__ for s in steps if s in HARMFUL]
    for args in GATE_CALLS:
        code = gate_exit(doc, *args)
        if harmful:
            assert code in (EXIT_NO_GO, EXIT_UNUSABLE), f"'go' after {harmful} ({args or 'no arguments'})"
        else:
            assert code == EXIT_GO, f"refused after only benign {[s.__name__ for s in steps]}"


def test_the_mutations_start_from_a_go():
    for args in GATE_CALLS:
        assert gate_exit(copy.deepcopy(GREEN), *args) == EXIT_GO


def test_one_image_of_a_report_can_be_judged_alone(tmp_path, capsys):
    doc = report(plat("linux/arm64"))
    red = copy.deepcopy(doc["images"][0]) | {"ref": "r/other:1"}
    red["platforms"][0]["checks"]["elf"]["outcome"] = "failed"
    doc["images"].append(red)
    path = tmp_path / "r.json"
    path.write_text(json.dumps(doc))
    assert main(["gate", str(path)]) == EXIT_NO_GO
    assert main(["gate", str(path), "--image", "r/app:1"]) == EXIT_GO
    assert main(["gate", str(path), "--image", "r/none:1"]) == EXIT_NO_GO
    assert "the report holds no image r/none:1" in capsys.readouterr().out


def test_what_the_run_was_to_test_must_all_be_there():
    doc = report(plat("linux/amd64", "native", slowdown=1.0), plat("linux/arm64"))
    doc["images"][0]["platforms"].pop()  # arm64's result taken out of the report
    assert reasons(doc) == ["r/app:1: linux/arm64 was to be tested, but the report has no result for it"]
    doc = report(plat("linux/arm64"))
    doc["run"]["settings"]["images"] = ["r/app:1", "r/worker:1"]
    assert reasons(doc) == ["r/worker:1: the run was to test it, but the report has no result for it"]
    doc = report(plat("linux/arm64"))
    doc["run"]["exit_status"] = 1
    assert reasons(doc) == ["pytest exited 1, not 0"]
    assert reasons(doc, image="r/app:1") == []  # another image of the run may have failed it


@pytest.mark.parametrize("count", [2.5, "2", True, -1])
def test_a_count_that_is_none_is_a_report_the_gate_cannot_read(count):
    """Called as a library, with no schema in between: the gate never says go on it."""
    from harness.gate import ReportUnusable

    doc = report(plat("linux/amd64", "native", slowdown=1.0))
    doc["images"][0]["platforms"][0]["selected_tests"] = count
    with pytest.raises(ReportUnusable, match="not a count"):
        reasons(doc)
    doc["images"][0]["platforms"][0]["selected_tests"] = 1.0  # JSON has one kind of number
    assert reasons(doc) == []


def test_an_image_twice_in_a_report_is_refused_only_where_it_matters():
    doc = report(plat("linux/amd64", "native", slowdown=1.0))
    doc["images"].append(copy.deepcopy(doc["images"][0]))
    assert reasons(doc) == ["r/app:1: the image appears twice in the report"]
    other = copy.deepcopy(doc["images"][0]) | {"ref": "r/worker:1"}
    doc["images"].append(other)
    assert reasons(doc, image="r/worker:1") == []
