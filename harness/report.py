"""Results of a run: gathered from records, written as JSON (schema 1) and as a matrix.

A *record* is a plain dict describing one outcome (a built-in check, a user test, or the
coverage of an index). Records are what crosses process boundaries (pytest-xdist workers
send them in test reports); :class:`Report` folds them into one document.
"""

from __future__ import annotations

import json
import math
import textwrap
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tabulate import tabulate

from .checks import CHECKS, FAILED, PASSED, SKIPPED
from .platform import Platform, sort_key
from .reference import short_name

SCHEMA = 1

KIND_CHECK = "check"
KIND_TEST = "test"
KIND_COVERAGE = "coverage"
KIND_RESOLVE = "resolve"


@dataclass
class TestRecord:
    __test__ = False

    nodeid: str
    outcome: str
    duration_s: float
    command_s: float | None
    detail: str = ""


@dataclass
class PlatformResult:
    platform: str
    digest: str
    mode: str
    mode_reason: str
    engine: str | None = None
    checks: dict[str, dict[str, str]] = field(default_factory=dict)
    tests: dict[str, TestRecord] = field(default_factory=dict)
    command_s: dict[str, float] = field(default_factory=dict)  # check name -> command time
    slowdown: float | None = None
    slowdown_samples: int = 0

    @property
    def failed(self) -> bool:
        return any(c["outcome"] == FAILED for c in self.checks.values()) or any(
            t.outcome == FAILED for t in self.tests.values()
        )

    def samples(self) -> dict[str, float]:
        """Command times of what passed: a command that failed (died of SIGILL, say) took
        no comparable time, so it is no sample of the slowdown."""
        out = {
            f"check:{name}": secs
            for name, secs in self.command_s.items()
            if self.checks.get(name, {}).get("outcome") == PASSED
        }
        out.update(
            {f"test:{key}": float(t.command_s) for key, t in self.tests.items() if t.outcome == PASSED and t.command_s}
        )
        return out

    def counts(self) -> tuple[int, int, int]:
        outs = [t.outcome for t in self.tests.values()]
        return outs.count(PASSED), outs.count(FAILED), outs.count(SKIPPED)

    def reason(self) -> str:
        """One line: what went wrong first, for the matrix."""
        for name in CHECKS:
            check = self.checks.get(name)
            if check and check["outcome"] == FAILED:
                return f"{name}: {check['detail']}"
        for test in self.tests.values():
            if test.outcome == FAILED:
                return f"{test.nodeid.rsplit('::', 1)[-1]}: {test.detail}"
        if self.mode == "unavailable":
            return self.mode_reason
        return ""


@dataclass
class ImageResult:
    ref: str
    digest: str = ""
    missing: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)
    error: str = ""
    is_index: bool | None = None
    notes: list[str] = field(default_factory=list)
    platforms: dict[str, PlatformResult] = field(default_factory=dict)


class Report:
    def __init__(self, host_platform: str = "", engine: str = "") -> None:
        self.host_platform = host_platform
        self.engine = engine
        self.images: dict[str, ImageResult] = {}

    # --- folding records -------------------------------------------------------------------
    def add(self, rec: dict[str, Any]) -> None:
        """Fold one record in. Test records' ``name`` is the same on every platform."""
        image = self.images.setdefault(rec["image"], ImageResult(rec["image"]))
        if rec.get("index_digest"):
            image.digest = rec["index_digest"]
        kind = rec["kind"]
        if kind == KIND_RESOLVE:
            image.error = rec.get("detail", "")
            return
        if kind == KIND_COVERAGE:
            image.missing = list(rec.get("missing", []))
            image.present = list(rec.get("present", []))
            image.is_index = rec.get("is_index")
            image.notes = list(rec.get("notes", []))
            return
        plat = image.platforms.get(rec["platform"])
        if plat is None:
            plat = image.platforms[rec["platform"]] = PlatformResult(
                rec["platform"],
                rec.get("digest", ""),
                rec.get("mode", ""),
                rec.get("mode_reason", ""),
                rec.get("engine"),
            )
        if kind == KIND_CHECK:
            plat.checks[rec["name"]] = {"outcome": rec["outcome"], "detail": rec.get("detail", "")}
            if rec.get("command_s") is not None:
                plat.command_s[rec["name"]] = float(rec["command_s"])
        elif kind == KIND_TEST:
            key = rec["name"]
            prev = plat.tests.get(key)
            outcome = rec["outcome"]
            if prev is not None:
                # setup, call and teardown each report; the worst outcome stands.
                outcome = _worst(prev.outcome, outcome)
            plat.tests[key] = TestRecord(
                rec["nodeid"],
                outcome,
                (prev.duration_s if prev else 0.0) + float(rec.get("duration_s") or 0.0),
                rec.get("command_s") if rec.get("command_s") is not None else (prev.command_s if prev else None),
                rec.get("detail") or (prev.detail if prev else ""),
            )

    # --- derived figures -------------------------------------------------------------------
    def compute_slowdown(self) -> None:
        """Per platform: geometric mean of command-time ratios against the native platform.

        Only commands that ran on both sides count (the same check or test, the same image),
        and only their time inside the container, not container start-up.
        """
        for image in self.images.values():
            ref = image.platforms.get(self.host_platform)
            for plat in image.platforms.values():
                plat.slowdown, plat.slowdown_samples = None, 0
                if ref is None:
                    continue
                mine, base = plat.samples(), ref.samples()
                ratios = [mine[k] / base[k] for k in mine if k in base and base[k] > 0 and mine[k] > 0]
                if ratios:
                    plat.slowdown = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
                    plat.slowdown_samples = len(ratios)

    @property
    def emulated(self) -> list[str]:
        seen = {p.platform for i in self.images.values() for p in i.platforms.values() if p.mode == "emulated"}
        return sorted(seen, key=lambda s: sort_key(Platform.parse(s)))

    @property
    def failed(self) -> bool:
        return any(i.error or i.missing or any(p.failed for p in i.platforms.values()) for i in self.images.values())

    # --- outputs ---------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        self.compute_slowdown()
        return {
            "schema": SCHEMA,
            "host": {"platform": self.host_platform, "engine": self.engine, "emulated": self.emulated},
            "images": [self._image_json(i) for i in self.images.values()],
        }

    def _image_json(self, image: ImageResult) -> dict[str, Any]:
        out: dict[str, Any] = {
            "ref": image.ref,
            "digest": image.digest or None,
            "missing_platforms": image.missing,
            "is_index": image.is_index,
            "notes": image.notes,
            "platforms": [],
        }
        if image.error:
            out["error"] = image.error
        for plat in _sorted(image.platforms.values()):
            checks = {name: plat.checks[name] for name in CHECKS if name in plat.checks}
            out["platforms"].append(
                {
                    "platform": plat.platform,
                    "digest": plat.digest,
                    "mode": plat.mode,
                    "mode_reason": plat.mode_reason,
                    "engine": plat.engine or self.engine,
                    "checks": checks,
                    "tests": [
                        {"nodeid": t.nodeid, "outcome": t.outcome, "duration_s": round(t.duration_s, 6)}
                        for t in plat.tests.values()
                    ],
                    "slowdown": round(plat.slowdown, 3) if plat.slowdown is not None else None,
                    "slowdown_samples": plat.slowdown_samples,
                }
            )
        return out

    def write_json(self, path: str | Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        tmp.replace(path)

    def rows(self) -> list[tuple[bool, list[str], str]]:
        """Matrix rows: (failed, cells, what it caught)."""
        self.compute_slowdown()
        out: list[tuple[bool, list[str], str]] = []
        for image in self.images.values():
            name = short_name(image.ref)
            if image.error:
                out.append((True, [name, "-", "error", "", "", "", "", "", "FAIL"], image.error))
            for plat in _sorted(image.platforms.values()):
                passed, failed, skipped = plat.counts()
                verdict = "FAIL" if plat.failed else ("skip" if plat.mode == "unavailable" else "pass")
                cells = [
                    name,
                    plat.platform,
                    plat.mode,
                    *(_mark(plat.checks.get(c)) for c in CHECKS),
                    f"{passed}/{failed}/{skipped}" if plat.tests else "-",
                    f"{plat.slowdown:.1f}x" if plat.slowdown is not None else "-",
                    verdict,
                ]
                out.append((plat.failed, cells, plat.reason()))
            for missing in image.missing:
                present = ", ".join(image.present) or "none"
                cells = [name, missing, "missing", "", "", "", "", "", "FAIL"]
                out.append((True, cells, f"not in the index (present: {present})"))
        return out

    def markdown(self) -> str:
        """The matrix as GitHub-flavoured Markdown, for a CI job summary."""
        headers = ["", "image", "platform", "mode", "config", "elf", "uname", "tests p/f/s", "slowdown"]
        rows = self.rows()
        table = tabulate(
            [["❌" if failed else "✅", *cells[:-1]] for failed, cells, _ in rows], headers=headers, tablefmt="github"
        )
        caught = [
            f"- **{cells[0]} {cells[1]}**: {_markdown_cell(why)}" for failed, cells, why in rows if failed and why
        ]
        verdict = "some platforms failed" if self.failed else "every platform passed"
        out = [f"### Multi-architecture results: {verdict}", "", table]
        if caught:
            out += ["", "What the red rows caught:", "", *caught]
        return "\n".join(out) + "\n"

    def matrix(self, width: int = 80, colour: bool = False) -> str:
        """The table, green and red rows, then one paragraph per red row saying what it caught."""
        headers = ["image", "platform", "mode", "config", "elf", "uname", "tests p/f/s", "slowdown", "verdict"]
        rows = self.rows()
        lines = tabulate([cells for _, cells, _ in rows], headers=headers, tablefmt="simple").splitlines()
        out = lines[:2]
        for (failed, _, _), line in zip(rows, lines[2:], strict=True):
            out.append(_paint(line, "31" if failed else "32", colour))
        caught = [(cells, why) for failed, cells, why in rows if failed and why]
        if caught:
            out.append("")
            out.append("What the red rows caught:")
            for cells, why in caught:
                head = f"- {cells[0]} {cells[1]}: "
                out.extend(
                    _paint(x, "31", colour)
                    for x in textwrap.wrap(
                        head + why, width=max(width, 40), subsequent_indent="    ", break_on_hyphens=False
                    )
                )
        return "\n".join(out)


def _paint(text: str, code: str, colour: bool) -> str:
    return f"\x1b[{code}m{text}\x1b[0m" if colour else text


def _markdown_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _worst(a: str, b: str) -> str:
    order = {FAILED: 2, SKIPPED: 1, PASSED: 0}
    return a if order.get(a, 0) >= order.get(b, 0) else b


def _mark(check: dict[str, str] | None) -> str:
    if check is None:
        return ""
    return {PASSED: "ok", FAILED: "FAIL", SKIPPED: "skip"}.get(check["outcome"], check["outcome"])


def _sorted(plats: Iterable[PlatformResult]) -> list[PlatformResult]:
    return sorted(plats, key=lambda p: sort_key(Platform.parse(p.platform)))
