"""scripts/same-report: timings may differ, nothing else may."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).parents[2] / "scripts" / "same-report"
GREEN = json.loads((Path(__file__).parents[1] / "data" / "green-report.json").read_text())


def same(tmp_path, after) -> int:
    (tmp_path / "a.json").write_text(json.dumps(GREEN))
    (tmp_path / "b.json").write_text(json.dumps(after))
    return subprocess.run([sys.executable, SCRIPT, tmp_path / "a.json", tmp_path / "b.json"], check=False).returncode


def test_timings_and_report_paths_may_differ(tmp_path):
    doc = copy.deepcopy(GREEN)
    doc["run"]["started"] = "2030-01-01T00:00:00Z"
    plat = doc["images"][0]["platforms"][1]
    plat["slowdown"] = (plat["slowdown"] or 1) * 1.5
    plat["tests"][0]["duration_s"] += 3
    plat["probe_s"] = {k: v * 2 for k, v in plat["probe_s"].items()}
    if "--multiarch-json" in doc["run"]["command"]:
        doc["run"]["command"][doc["run"]["command"].index("--multiarch-json") + 1] = "elsewhere.json"
    assert same(tmp_path, doc) == 0


def test_a_verdict_may_not(tmp_path):
    doc = copy.deepcopy(GREEN)
    plat = doc["images"][0]["platforms"][1]
    plat["checks"]["slowdown"] = {"outcome": "failed", "detail": "60.00x, above --max-slowdown 50"}
    assert same(tmp_path, doc) == 1
    doc = copy.deepcopy(GREEN)
    doc["images"][0]["platforms"][0]["checks"]["elf"]["detail"] += " and one more"
    assert same(tmp_path, doc) == 1
