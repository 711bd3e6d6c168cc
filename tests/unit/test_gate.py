from __future__ import annotations

import json

import jsonschema
import pytest

from harness.gate import SCHEMA_FILE, main, reasons

D = "sha256:" + "a" * 64


def plat(name, mode="emulated", checks="passed", tests=("passed",), slowdown=2.0):
    return {
        "platform": name,
        "digest": D,
        "mode": mode,
        "mode_reason": "r",
        "engine": "docker",
        "checks": {c: {"outcome": checks, "detail": f"{c} says so"} for c in ("config", "elf", "uname")},
        "tests": [{"nodeid": f"t.py::t{i}[{name}]", "outcome": o, "duration_s": 0.1} for i, o in enumerate(tests)],
        "slowdown": slowdown,
        "slowdown_samples": 3,
    }


def report(*plats, missing=()):
    return {
        "schema": 1,
        "host": {"platform": "linux/amd64", "engine": "docker", "emulated": []},
        "images": [
            {
                "ref": "r/app:1",
                "digest": D,
                "missing_platforms": list(missing),
                "is_index": True,
                "notes": [],
                "platforms": list(plats),
            }
        ],
    }


def test_schema_accepts_a_report_and_refuses_a_broken_one():
    schema = json.loads(SCHEMA_FILE.read_text())
    jsonschema.validate(report(plat("linux/amd64", "native", slowdown=1.0)), schema)
    broken = report(plat("linux/amd64"))
    broken["images"][0]["platforms"][0]["mode"] = "maybe"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)


def test_green_report_passes():
    assert reasons(report(plat("linux/amd64", "native", slowdown=1.0), plat("linux/arm64"))) == []


@pytest.mark.parametrize(
    ("doc", "says"),
    [
        (report(plat("linux/arm64", checks="failed")), "linux/arm64: config failed: config says so"),
        (report(plat("linux/arm64", tests=("passed", "failed"))), "1 test(s) failed: t.py::t1[linux/arm64]"),
        (report(plat("linux/amd64"), missing=["linux/arm64"]), "linux/arm64 is missing from the index"),
        (report(plat("windows/amd64", mode="unavailable")), "windows/amd64: not run here (r)"),
    ],
)
def test_red_reports_say_why(doc, says):
    assert any(says in r for r in reasons(doc)), reasons(doc)


def test_require_and_max_slowdown():
    doc = report(plat("linux/amd64", "native", slowdown=1.0), plat("linux/s390x", slowdown=6.5))
    assert reasons(doc, require=["linux/amd64"]) == []
    assert reasons(doc, require=["linux/amd64", "linux/arm64"]) == [
        "r/app:1: required platform linux/arm64 was not tested"
    ]
    assert reasons(doc, max_slowdown=5) == ["r/app:1 linux/s390x: slowdown 6.5x is above --max-slowdown 5"]


def test_cli_exit_codes(tmp_path, capsys):
    good = tmp_path / "good.json"
    good.write_text(json.dumps(report(plat("linux/arm64"))))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(report(plat("linux/arm64", checks="failed"))))
    assert main(["gate", str(good)]) == 0
    assert main(["gate", str(bad)]) == 1
    assert "release must not go out" in capsys.readouterr().out
    assert main(["gate", str(tmp_path / "none.json")]) == 1
    assert "cannot read the report" in capsys.readouterr().err
    assert main(["gate", str(good), "--require", "linux/amd46"]) == 2
    assert "did you mean linux/amd64" in capsys.readouterr().err
