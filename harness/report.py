"""Results of a run: folded from records, written as JSON (schema 1) and as a matrix.

:class:`Report` folds the run's records (:mod:`harness.records`: a built-in check, a user
test, a probe, the coverage of an index) into one document, with a :class:`RunInfo` that
says what the run selected, left out and whether it ran to its end. :meth:`Report.from_json`
reads a written report back into the same types, for the release gate.
"""

from __future__ import annotations

import json
import math
import os
import re
import textwrap
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tabulate import tabulate

from .checks import FAILED, PASSED, SKIPPED, brief, check_names
from .platform import Platform, sort_key
from .records import CheckRecord, CoverageRecord, ImageCheckRecord, ProbeRecord, Record, ResolveRecord, Subject
from .reference import short_name
from .release import UNCHANGED, Change
from .survey import Survey

SCHEMA = 1
#: Command times below this (natively) are too short to compare: they are left out of the
#: slowdown. A command's own time is the exec's CPU (or wall) time less what an exec of
#: nothing costs, about 13 ms here, which wobbles by a millisecond or two: a native
#: `uname -m` (0.5 ms) comes out anywhere from 0 to 2 ms, and its ratio anywhere from 5x to 100x.
MIN_TIMED_S = 0.005

#: The check a run with --max-slowdown adds to each platform's checks in the report.
SLOWDOWN_CHECK = "slowdown"


@dataclass
class TestResult:
    """One user test on one platform: its phases' records folded (the worst outcome stands)."""

    __test__ = False

    nodeid: str
    outcome: str
    duration_s: float
    command_s: float | None
    detail: str = ""


@dataclass
class RunInfo:
    """What a run was asked to do and what it did: the gate trusts no report without it."""

    command: list[str] = field(default_factory=list)
    started: str = ""
    finished: str = ""
    harness_version: str = ""
    exit_status: int | None = None
    #: How many items the run selected; the node ids of those -k, -m or --deselect left out.
    selected: int = 0
    deselected: list[str] = field(default_factory=list)
    #: Why the run does not prove what it claims (interrupted, a worker crashed, ...); empty
    #: when it ran every selected item to its end.
    incomplete: list[str] = field(default_factory=list)
    #: The settings that narrow or judge a check (ELF globs, limits, strictness).
    settings: dict[str, Any] = field(default_factory=dict)
    #: Outcomes of the tests that run on no platform (plain tests beside the image's).
    other_tests: dict[str, int] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return not self.incomplete

    def to_json(self) -> dict[str, Any]:
        return {
            "command": self.command,
            "started": self.started,
            "finished": self.finished,
            "harness_version": self.harness_version,
            "exit_status": self.exit_status,
            "selected": self.selected,
            "deselected": self.deselected,
            "settings": self.settings,
            "other_tests": self.other_tests,
        }


@dataclass
class PlatformResult:
    platform: str
    digest: str
    mode: str
    mode_reason: str
    engine: str | None = None
    #: User tests selected on this platform, as the process that collected them counted.
    selected_tests: int | None = None
    checks: dict[str, CheckRecord] = field(default_factory=dict)
    #: Test name (the same on every platform) -> its result.
    tests: dict[str, TestResult] = field(default_factory=dict)
    probe: dict[str, float] = field(default_factory=dict)  # probe command -> median seconds
    slowdown: float | None = None
    slowdown_samples: int = 0
    #: Set when the run has a --max-slowdown that this platform's slowdown is above, or
    #: that could not be measured here: a limit nobody measured is no limit met.
    over_limit: float | None = None
    #: Why the slowdown is None, when it is.
    unmeasured: str = ""
    #: Node ids a report read back lists more than once (a report written here never does).
    duplicate_tests: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return (
            any(c.outcome == FAILED for c in self.checks.values())
            or any(t.outcome == FAILED for t in self.tests.values())
            or self.over_limit is not None
        )

    def samples(self) -> dict[str, float]:
        """Command times of what passed: a command that failed (died of SIGILL, say) took
        no comparable time, so it is no sample of the slowdown."""
        out = {
            f"check:{name}": check.command_s
            for name, check in self.checks.items()
            if check.outcome == PASSED and check.command_s is not None
        }
        out.update({f"probe:{name}": secs for name, secs in self.probe.items()})
        out.update(
            {f"test:{key}": float(t.command_s) for key, t in self.tests.items() if t.outcome == PASSED and t.command_s}
        )
        return out

    def slowdown_text(self) -> str:
        if self.slowdown is None:
            return f"not measured ({self.unmeasured or 'no command ran both here and natively'})"
        return f"{self.slowdown:.2f}x (geometric mean of {self.slowdown_samples} paired commands)"

    def counts(self) -> tuple[int, int, int]:
        outs = [t.outcome for t in self.tests.values()]
        return outs.count(PASSED), outs.count(FAILED), outs.count(SKIPPED)

    def reason(self) -> str:
        """One line: what went wrong first, for the matrix."""
        for name in check_names():
            check = self.checks.get(name)
            if check and check.outcome == FAILED:
                return f"{name}: {check.detail}"
        for test in self.tests.values():
            if test.outcome == FAILED:
                return f"{test.nodeid.rsplit('::', 1)[-1]}: {test.detail}"
        if self.over_limit is not None:
            return f"slowdown: {self.limit_reason()}"
        if self.mode == "unavailable":
            return self.mode_reason
        return ""

    def limit_reason(self) -> str:
        """How the slowdown misses --max-slowdown (above it, or not measured); empty when it does not."""
        if self.over_limit is None:
            return ""
        if self.slowdown is None:
            return f"{self.slowdown_text()}, so --max-slowdown {self.over_limit:g} is not met"
        return f"{self.slowdown_text()}, above --max-slowdown {self.over_limit:g}"

    def warnings(self) -> list[str]:
        """Every warning of the checks that passed with some, each as ``check: sentence``."""
        return [f"{name}: {w}" for name in check_names() if name in self.checks for w in self.checks[name].warnings]


@dataclass
class ImageResult:
    ref: str
    digest: str = ""
    missing: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)
    #: Every platform the run was to test of this image: each has a result or is missing.
    #: None only in a report read back that does not say.
    requested: list[str] | None = field(default_factory=list)
    error: str = ""
    is_index: bool | None = None
    notes: list[str] = field(default_factory=list)
    platforms: dict[str, PlatformResult] = field(default_factory=dict)
    #: Platforms a report read back lists more than once (a report written here never does).
    duplicate_platforms: list[str] = field(default_factory=list)
    #: Checks of the image as a whole (``provenance``, ``baseline``), by name.
    checks: dict[str, ImageCheckRecord] = field(default_factory=dict)
    #: Whether a report read back lists the index's platforms (``present_platforms``).
    lists_present: bool = True

    @property
    def dropped(self) -> list[str]:
        """Platforms the baseline had and this index lacks, as the baseline check found."""
        check = self.checks.get("baseline")
        dropped = check.data.get("dropped") if check is not None else None
        return [str(p) for p in dropped] if isinstance(dropped, list) else []

    def release_lines(self) -> list[str]:
        """The image checks, one line each, then what changed per platform since the baseline."""
        out = []
        for name, check in self.checks.items():
            out.append(f"{name}: {MARK.get(check.outcome, check.outcome)}: {check.detail}")
            out.extend(f"  ~ warning: {w}" for w in check.warnings)
        baseline = self.checks.get("baseline")
        changes = baseline.data.get("platforms") if baseline is not None else None
        if isinstance(changes, dict):
            lines = {plat: _change_line(change) for plat, change in changes.items()}
            same = [plat for plat, line in lines.items() if line == UNCHANGED]
            out.extend(f"  {plat}: {line}" for plat, line in lines.items() if line != UNCHANGED)
            if same:
                out.append(f"  {UNCHANGED} since the baseline: {', '.join(same)}")
        return out


class Report:
    def __init__(self, host_platform: str = "", engine: str = "", max_slowdown: float | None = None) -> None:
        self.host_platform = host_platform
        self.engine = engine
        self.max_slowdown = max_slowdown
        self.images: dict[str, ImageResult] = {}
        #: Each engine of the run as surveyed (harness.survey.Survey.to_data()).
        self.engines: list[dict[str, Any]] = []
        self.run = RunInfo()
        #: Where the run's time went (:mod:`harness.timings`): wall_s, parallel, feed and,
        #: per image and platform, seconds per phase. None when the run kept none.
        self.timings: dict[str, Any] | None = None
        #: What a report read back says of itself: its ``complete`` (None when it has no
        #: ``complete`` or no ``run``), and the images it lists more than once.
        self.claimed_complete: bool | None = None
        self.duplicate_images: list[str] = []
        #: Records folded in so far, and what the slowdown figures were last worked out
        #: for (host, limit, records): they are worked out again only when that changes. A
        #: report read back keeps the figures it was written with.
        self._records = 0
        self._figured: tuple[str, float | None, int] | None = None

    # --- folding records -------------------------------------------------------------------
    def add(self, record: Record) -> None:
        """Fold one record in."""
        self._records += 1
        ref = (
            record.image
            if isinstance(record, ResolveRecord | CoverageRecord | ImageCheckRecord)
            else record.subject.image
        )
        image = self.images.setdefault(ref, ImageResult(ref))
        if isinstance(record, ResolveRecord):
            image.error = record.detail
            return
        if isinstance(record, ImageCheckRecord):
            image.checks[record.name] = record
            return
        if isinstance(record, CoverageRecord):
            image.digest = record.index_digest or image.digest
            image.missing = [str(p) for p in record.missing]
            image.present = [str(p) for p in record.present]
            image.requested = [str(p) for p in record.requested]
            image.is_index = record.is_index
            image.notes = list(record.notes)
            if record.outcome == FAILED and not image.missing:
                image.error = record.detail or "nothing in the index to test"  # no runnable entry
            return
        subject = record.subject
        image.digest = subject.index_digest or image.digest
        plat = image.platforms.get(str(subject.platform))
        if plat is None:
            plat = image.platforms[str(subject.platform)] = PlatformResult(
                str(subject.platform), subject.digest, subject.mode, subject.mode_reason, subject.engine
            )
        if subject.selected_tests is not None:
            plat.selected_tests = subject.selected_tests
        if isinstance(record, CheckRecord):
            plat.checks[record.name] = record
        elif isinstance(record, ProbeRecord):
            plat.probe = dict(record.samples)
        else:
            prev = plat.tests.get(record.name)
            plat.tests[record.name] = TestResult(
                record.nodeid,
                worst(prev.outcome, record.outcome) if prev else record.outcome,
                (prev.duration_s if prev else 0.0) + record.duration_s,
                record.command_s if record.command_s is not None else (prev.command_s if prev else None),
                record.detail or (prev.detail if prev else ""),
            )

    # --- derived figures -------------------------------------------------------------------
    def compute_slowdown(self) -> None:
        """Per platform: geometric mean of command-time ratios against the native platform.

        Only commands that ran on both sides count (the same check or test, the same image),
        and only their time inside the container, not container start-up.
        """
        key = (self.host_platform, self.max_slowdown, self._records)
        if key == self._figured:
            return
        self._figured = key
        for image in self.images.values():
            ref = image.platforms.get(self.host_platform)
            for plat in image.platforms.values():
                plat.slowdown, plat.slowdown_samples, plat.unmeasured = None, 0, ""
                if ref is None:
                    native = self.host_platform or "the engine's own platform"
                    plat.unmeasured = f"no {native} in this run to compare with: add it to --platforms"
                else:
                    mine, base = plat.samples(), ref.samples()
                    ratios = [mine[k] / base[k] for k in mine if k in base and base[k] >= MIN_TIMED_S and mine[k] > 0]
                    if ratios:
                        plat.slowdown = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
                        plat.slowdown_samples = len(ratios)
                limit = self.max_slowdown
                over = limit is not None and plat.mode != "unavailable" and (plat.slowdown or math.inf) > limit
                plat.over_limit = limit if over else None

    @property
    def emulated(self) -> list[str]:
        seen = {p.platform for i in self.images.values() for p in i.platforms.values() if p.mode == "emulated"}
        return sorted(seen, key=lambda s: sort_key(Platform.parse(s)))

    def over_limit(self) -> list[tuple[str, PlatformResult]]:
        """(image, platform) pairs whose slowdown is above --max-slowdown."""
        self.compute_slowdown()
        return [
            (i.ref, p) for i in self.images.values() for p in sorted_platforms(i.platforms.values()) if p.over_limit
        ]

    @property
    def failed(self) -> bool:
        return any(
            i.error
            or i.missing
            or any(p.failed for p in i.platforms.values())
            or any(c.outcome == FAILED for c in i.checks.values())
            for i in self.images.values()
        )

    def incomplete_text(self) -> str:
        return "; ".join(self.run.incomplete) + ". It proves nothing about what did not run: the gate refuses it"

    def verdict(self) -> str:
        """The headline: incomplete before failed before passed."""
        if not self.run.complete:
            return "incomplete run"
        return "some platforms failed" if self.failed else "every platform passed"

    # --- outputs ---------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        self.compute_slowdown()
        return {
            "schema": SCHEMA,
            "complete": self.run.complete,
            "incomplete": self.run.incomplete,
            "run": self.run.to_json(),
            "host": {"platform": self.host_platform, "engine": self.engine, "emulated": self.emulated},
            "engines": self.engines,
            "max_slowdown": self.max_slowdown,
            "images": [self._image_json(i) for i in self.images.values()],
        } | ({"timings": self.timings} if self.timings is not None else {})

    def _image_json(self, image: ImageResult) -> dict[str, Any]:
        out: dict[str, Any] = {
            "ref": image.ref,
            "digest": image.digest or None,
            "missing_platforms": image.missing,
            "present_platforms": image.present,
            "requested_platforms": image.requested or [],
            "is_index": image.is_index,
            "notes": image.notes,
            "platforms": [],
        }
        if image.error:
            out["error"] = image.error
        if image.checks:
            out["checks"] = {name: check.to_json() for name, check in image.checks.items()}
        for plat in sorted_platforms(image.platforms.values()):
            checks = {name: plat.checks[name].to_json() for name in check_names() if name in plat.checks}
            if self.max_slowdown is not None and plat.mode != "unavailable":
                checks[SLOWDOWN_CHECK] = self._slowdown_check(plat)
            out["platforms"].append(
                {
                    "platform": plat.platform,
                    "digest": plat.digest,
                    "mode": plat.mode,
                    "mode_reason": plat.mode_reason,
                    "engine": plat.engine or self.engine,
                    "selected_tests": plat.selected_tests,
                    "checks": checks,
                    "tests": [
                        {
                            "nodeid": t.nodeid,
                            "outcome": t.outcome,
                            "duration_s": round(t.duration_s, 6),
                            "command_s": round(t.command_s, 6) if t.command_s is not None else None,
                        }
                        for t in plat.tests.values()
                    ],
                    "slowdown": round(plat.slowdown, 3) if plat.slowdown is not None else None,
                    "slowdown_samples": plat.slowdown_samples,
                    "probe_s": {k: round(v, 6) for k, v in plat.probe.items()},
                }
            )
        return out

    def _slowdown_check(self, plat: PlatformResult) -> dict[str, str]:
        if plat.over_limit is not None:
            return {"outcome": FAILED, "detail": plat.limit_reason()}
        return {"outcome": PASSED, "detail": f"{plat.slowdown_text()}, within --max-slowdown {self.max_slowdown:g}"}

    def write_json(self, path: str | Path) -> None:
        write_atomic(path, json.dumps(self.to_json(), indent=2) + "\n")

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Report:
        """A written report (schema 1, already validated) read back into the types it was
        folded into: what the gate judges. Nothing is repaired: what is absent stays absent
        (None), and what appears twice is listed as such."""
        host = doc.get("host") or {}
        out = cls(str(host.get("platform", "")), str(host.get("engine", "")), doc.get("max_slowdown"))
        out._figured = (out.host_platform, out.max_slowdown, out._records)
        out.engines = [dict(e) for e in doc.get("engines") or [] if isinstance(e, dict)]
        run = doc.get("run")
        complete = doc.get("complete")
        out.claimed_complete = complete if isinstance(complete, bool) and run is not None else None
        if complete is not None and not isinstance(complete, bool):
            out.claimed_complete = False  # "yes", 0: anything but true is not a claim of completeness
        run = run or {}
        out.run = RunInfo(
            command=list(run.get("command") or []),
            started=str(run.get("started", "")),
            finished=str(run.get("finished", "")),
            harness_version=str(run.get("harness_version", "")),
            exit_status=run.get("exit_status"),
            selected=int(run.get("selected") or 0),
            deselected=list(run.get("deselected") or []),
            incomplete=[str(x) for x in doc.get("incomplete") or []],
            settings=dict(run.get("settings") or {}),
            other_tests=dict(run.get("other_tests") or {}),
        )
        timings = doc.get("timings")
        out.timings = dict(timings) if isinstance(timings, dict) else None
        for img in doc.get("images") or []:
            image = _image_from_json(img)
            if image.ref in out.images:
                out.duplicate_images.append(image.ref)
                continue
            out.images[image.ref] = image
        return out

    def engine_lines(self) -> list[str]:
        """Where it ran: one line per engine, then how it runs each architecture."""
        out = []
        for data in self.engines:
            try:
                found = Survey.from_data(data)
            except TypeError:  # a hand-made report's engine entry: shown as it is
                out.append(f"engine {data.get('engine', '?')}")
                continue
            out.append(f"engine {found.engine}: {found.describe()}")
            if found.runs:
                out.append(f"  runs {found.modes_line()}")
        return [*out, ""] if out else out

    def rows(self) -> list[Row]:
        """The matrix: one row per (image, platform), missing platforms included."""
        self.compute_slowdown()
        out: list[Row] = []
        for image in self.images.values():
            name = short_name(image.ref)
            if image.error:
                out.append(
                    Row(image.ref, name, "-", "error", ("",) * len(check_names()), "", "", "FAIL", True, image.error)
                )
            for plat in sorted_platforms(image.platforms.values()):
                passed, failed, skipped = plat.counts()
                verdict = "FAIL" if plat.failed else ("skip" if plat.mode == "unavailable" else "pass")
                slowdown = _times(plat.slowdown) if plat.slowdown is not None else "-"
                if plat.over_limit:
                    slowdown += "!"
                out.append(
                    Row(
                        image.ref,
                        name,
                        plat.platform,
                        plat.mode,
                        tuple(_mark(plat.checks.get(c)) for c in check_names()),
                        f"{passed}/{failed}/{skipped}" if plat.tests else "-",
                        slowdown,
                        verdict,
                        plat.failed,
                        plat.reason(),
                        tuple(plat.warnings()),
                    )
                )
            for missing in image.missing:
                present = ", ".join(image.present) or "none"
                why = f"not in the index (present: {present})"
                out.append(
                    Row(image.ref, name, missing, "missing", ("",) * len(check_names()), "", "", "FAIL", True, why)
                )
            for dropped in image.dropped:
                if dropped in image.missing:
                    continue
                why = f"baseline: in the release before ({image.checks['baseline'].data.get('ref')}), not in this one"
                out.append(
                    Row(image.ref, name, dropped, "dropped", ("",) * len(check_names()), "", "", "FAIL", True, why)
                )
        return out

    def test_grid(self, image: ImageResult) -> tuple[list[str], list[tuple[str, dict[str, str]]]]:
        """Tests x platforms of one image: (platforms, [(test, {platform: outcome})])."""
        plats = [p.platform for p in sorted_platforms(image.platforms.values()) if p.tests]
        grid: dict[str, dict[str, str]] = {}
        for plat in image.platforms.values():
            for key, test in plat.tests.items():
                grid.setdefault(_test_label(key, image.ref), {})[plat.platform] = test.outcome
        return plats, list(grid.items())

    def markdown(self) -> str:
        """The matrix as GitHub-flavoured Markdown, for a CI job summary."""
        headers = ["", "image", "platform", "mode", *check_names(), "tests p/f/s", "slowdown"]
        rows = self.rows()
        table = tabulate(
            [["❌" if r.failed else "✅", *r.cells(with_image=True)[:-1]] for r in rows],
            headers=headers,
            tablefmt="github",
        )
        caught = [f"- **{r.name} {r.platform}**: {_markdown_cell(r.reason)}" for r in rows if r.failed and r.reason]
        warned = [f"- **{r.name} {r.platform}**: {_markdown_cell(w)}" for r in rows for w in r.warnings]
        out = [f"### Multi-architecture results: {self.verdict()}", ""]
        if not self.run.complete:
            out += [f"**Incomplete run:** {_markdown_cell(self.incomplete_text())}.", ""]
        out.append(table)
        if caught:
            out += ["", "What the red rows caught:", "", *caught]
        if warned:
            out += ["", "Warnings (the checks passed):", "", *warned]
        for image in self.images.values():
            lines = image.release_lines()
            if lines:
                out += ["", f"The index of {short_name(image.ref)} as a whole:", ""]
                out += [f"- {_markdown_cell(line.strip())}" for line in lines]
        engines = [line for line in self.engine_lines() if line]
        if engines:
            out += ["", "Where it ran:", "", *(f"- {_markdown_cell(line.strip())}" for line in engines)]
        for image in self.images.values():
            plats, tests = self.test_grid(image)
            if not tests:
                continue
            grid = tabulate(
                [[_markdown_cell(name), *(_MD_MARK.get(cells.get(p, ""), "") for p in plats)] for name, cells in tests],
                headers=["test", *(_short_platform(p) for p in plats)],
                tablefmt="github",
            )
            out += ["", f"<details><summary>Tests of {short_name(image.ref)} on each platform</summary>", "", grid]
            out += ["", "</details>"]
        return "\n".join(out) + "\n"

    def matrix(self, width: int = 80, colour: bool = False) -> str:
        """The terminal summary: per image, a table of its platforms (each red row followed
        by what it caught, on one line), then its tests x platforms when it has tests."""
        width = max(width, 60)
        out: list[str] = []
        if not self.run.complete:
            banner = textwrap.wrap(f"INCOMPLETE RUN: {self.incomplete_text()}.", width)
            out.extend(_paint(line, "31;1", colour) for line in banner)
            out.append("")
        rows = self.rows()
        for line in self.engine_lines():
            wrapped = textwrap.wrap(line, width, subsequent_indent="    ", break_on_hyphens=False)
            out.extend(wrapped or [""])
        for image in self.images.values():
            mine = [r for r in rows if r.ref == image.ref]
            if out and out[-1]:
                out.append("")
            digest = f" @ {image.digest[:19]}" if image.digest else ""
            single = " (a single image, not a manifest list)" if image.is_index is False else ""
            out.append(_paint(f"{short_name(image.ref)}{digest}{single}", "1", colour))
            lines = _columns(
                [r.cells() for r in mine], ["platform", "mode", *check_names(), "p/f/s", "slow", "verdict"]
            )
            out.extend(lines[:2])
            for row, line in zip(mine, lines[2:], strict=True):
                out.append(_paint(line, "31" if row.failed else "32", colour))
                if row.failed and row.reason:
                    out.append(_paint(_clip(f"  - {brief(row.reason)}", width), "31", colour))
                if row.warnings:
                    more = f" (+{len(row.warnings) - 1} more)" if len(row.warnings) > 1 else ""
                    out.append(_paint(_clip(f"  ~ warning: {row.warnings[0]}", width - len(more)) + more, "33", colour))
            release = image.release_lines()
            if release:
                out.append("")
            for line in release:
                failed = line.startswith(tuple(f"{n}: {MARK[FAILED]}" for n in image.checks))
                code = "31" if failed else ("33" if line.lstrip().startswith("~") else "0")
                out.append(_paint(_clip(line, width), code, colour))
            out.extend(self._test_tables(image, width, colour))
        if any(r.slowdown.endswith("!") for r in rows):
            out += ["", f"! slowdown above --max-slowdown {self.max_slowdown:g}, or not measured"]
        return "\n".join(out)

    def _test_tables(self, image: ImageResult, width: int, colour: bool) -> list[str]:
        """Tests x platforms, split into several tables of fewer platforms when too wide; one
        line when every test passed everywhere."""
        plats, tests = self.test_grid(image)
        if not tests:
            return []
        if all(cells.get(p) == PASSED for _, cells in tests for p in plats):
            return ["", _paint(f"tests: all {len(tests)} passed on all {len(plats)} platforms", "32", colour)]
        first = min(max(len(name) for name, _ in tests), width // 2)
        out: list[str] = []
        for chunk in _fit(plats, width - first, lambda p: max(len(_short_platform(p)), 4) + 2):
            body = [
                [
                    _clip(name, first),
                    *(
                        _paint(MARK.get(cells.get(p, ""), "-"), _TEST_COLOUR.get(cells.get(p, ""), "0"), colour)
                        for p in chunk
                    ),
                ]
                for name, cells in tests
            ]
            out.append("")
            out.extend(_columns(body, ["tests", *(_short_platform(p) for p in chunk)]))
        return out


@dataclass(frozen=True)
class Row:
    ref: str
    name: str
    platform: str
    mode: str
    checks: tuple[str, ...]
    tests: str
    slowdown: str
    verdict: str
    failed: bool
    reason: str
    #: What the checks that passed warned of, each as ``check: sentence``.
    warnings: tuple[str, ...] = ()

    def cells(self, with_image: bool = False) -> list[str]:
        head = [self.name] if with_image else []
        return [*head, self.platform, self.mode, *self.checks, self.tests, self.slowdown, self.verdict]


#: How an outcome shows in a table cell.
MARK = {PASSED: "ok", FAILED: "FAIL", SKIPPED: "skip"}
#: A check that passed with warnings.
WARN = "warn"
_TEST_COLOUR = {PASSED: "32", FAILED: "31", SKIPPED: "33"}
_MD_MARK = {PASSED: "✅", FAILED: "❌", SKIPPED: "⏭️"}


def _short_platform(platform: str) -> str:
    return platform.removeprefix("linux/")


def _test_label(key: str, ref: str) -> str:
    """``path::test_x[*]`` or ``path::test_x[image-*]`` -> ``test_x``; other parameters stay."""
    name = key.rsplit("::", 1)[-1]
    if "[" not in name:
        return name
    func, params = name.split("[", 1)
    params = params.removesuffix("]").replace(f"{short_name(ref)}-*", "*")
    rest = "-".join(p for p in params.split("*") if p).strip("-").replace("--", "-")
    return f"{func}[{rest}]" if rest else func


def _fit(items: list[str], room: int, width: Callable[[str], int]) -> list[list[str]]:
    """``items`` in runs whose widths add up to at most ``room`` (one at least per run)."""
    runs: list[list[str]] = [[]]
    used = 0
    for item in items:
        if runs[-1] and used + width(item) > room:
            runs.append([])
            used = 0
        runs[-1].append(item)
        used += width(item)
    return runs


def _columns(rows: list[list[str]], headers: list[str]) -> list[str]:
    """A plain table, columns two spaces apart, no padding beyond the widest cell (tabulate
    pads headers, which costs the columns an 80-column terminal does not have)."""
    widths = [max(len(_ANSI.sub("", str(c))) for c in col) for col in zip(headers, *rows, strict=True)]

    def line(cells: list[str]) -> str:
        return "  ".join(c + " " * (w - len(_ANSI.sub("", c))) for c, w in zip(cells, widths, strict=True)).rstrip()

    return [line(headers), "  ".join("-" * w for w in widths), *(line(r) for r in rows)]


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3].rstrip() + "..."


def _paint(text: str, code: str, colour: bool) -> str:
    return f"\x1b[{code}m{text}\x1b[0m" if colour else text


def _markdown_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def worst(a: str, b: str) -> str:
    """The worse of two outcomes: failed, then skipped, then passed."""
    order = {FAILED: 2, SKIPPED: 1, PASSED: 0}
    return a if order.get(a, 0) >= order.get(b, 0) else b


def _mark(check: CheckRecord | None) -> str:
    if check is None:
        return ""
    if check.outcome == PASSED and check.warnings:
        return WARN
    return MARK.get(check.outcome, check.outcome)


def write_atomic(path: str | Path, text: str | Callable[[Path], None]) -> None:
    """Write a report whole or not at all: a reader never sees half of one, and an
    interrupted write leaves the previous file as it was, and no temporary file beside it.
    ``text`` is the content, or a function that writes the file it is given."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        if callable(text):
            text(tmp)
        else:
            tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def _image_from_json(img: dict[str, Any]) -> ImageResult:
    ref = str(img.get("ref", "?"))
    digest = img.get("digest")
    requested = img.get("requested_platforms")
    present = img.get("present_platforms")
    image = ImageResult(
        ref,
        digest if isinstance(digest, str) else "",
        missing=[str(p) for p in img.get("missing_platforms") or []],
        present=[str(p) for p in present or []],
        lists_present=present is not None,
        requested=[str(p) for p in requested] if requested is not None else None,
        error=str(img.get("error") or ""),
        is_index=img.get("is_index"),
        notes=[str(n) for n in img.get("notes") or []],
    )
    for name, check in (img.get("checks") or {}).items():
        data = {k: v for k, v in check.items() if k not in ("outcome", "detail", "warnings", "skip")}
        image.checks[str(name)] = ImageCheckRecord(
            ref,
            str(name),
            str(check.get("outcome")),
            str(check.get("detail", "")),
            tuple(str(w) for w in check.get("warnings") or ()),
            str(check.get("skip", "")),
            data,
        )
    for data in img.get("platforms") or []:
        plat = _platform_from_json(image, data)
        if plat.platform in image.platforms:
            image.duplicate_platforms.append(plat.platform)
            continue
        image.platforms[plat.platform] = plat
    return image


def _change_line(change: Any) -> str:
    """One platform's change since the baseline, from the report's JSON of it."""

    def pair(key: str) -> tuple[int | None, int | None]:
        sizes = change.get(key) or {}
        return (sizes.get("before"), sizes.get("after"))

    try:
        elf = change.get("elf") or {}
        counts = (int(elf.get("added") or 0), int(elf.get("removed") or 0), int(elf.get("changed_architecture") or 0))
        found = tuple(change.get("new_findings") or ())
        return Change(
            "",
            str(change.get("status", "")),
            pair("compressed"),
            pair("uncompressed"),
            counts=counts,
            new_findings=found,
        ).summary()
    except (AttributeError, TypeError, ValueError):  # a report edited by hand: shown as it is
        return json.dumps(change)[:200]


def _count(value: Any) -> int | None:
    """A count as JSON has it (2, or 2.0: JSON has one kind of number); anything else is no count."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value) or value < 0:
        raise ValueError(f"selected_tests is {value!r}, not a count")
    return int(value)


def _literal_platform(name: str) -> Platform:
    """The platform a report names, as written (``os/arch[/variant]``), for any os."""
    parts = name.split("/")
    if not 2 <= len(parts) <= 3 or not all(parts):
        raise ValueError(f"{name!r} is not a platform (os/architecture[/variant])")
    return Platform(parts[0], parts[1], parts[2] if len(parts) == 3 else None)


def _platform_from_json(image: ImageResult, data: dict[str, Any]) -> PlatformResult:
    name = str(data["platform"])
    plat = PlatformResult(
        name,
        str(data.get("digest", "")),
        str(data.get("mode", "")),
        str(data.get("mode_reason", "")),
        data.get("engine"),
        _count(data.get("selected_tests")),
        slowdown=data.get("slowdown"),
        slowdown_samples=int(data.get("slowdown_samples") or 0),
        probe={str(k): float(v) for k, v in (data.get("probe_s") or {}).items()},
    )
    subject = Subject(image.ref, image.digest, _literal_platform(name), plat.digest, plat.mode, plat.mode_reason)
    for check_name, check in (data.get("checks") or {}).items():
        plat.checks[check_name] = CheckRecord(
            subject,
            check_name,
            str(check.get("outcome")),
            str(check.get("detail", "")),
            warnings=tuple(str(w) for w in check.get("warnings") or ()),
            skip=str(check.get("skip", "")),
        )
    for test in data.get("tests") or []:
        nodeid = str(test["nodeid"])
        if nodeid in plat.tests:
            plat.duplicate_tests.append(nodeid)
            continue
        command = test.get("command_s")
        plat.tests[nodeid] = TestResult(
            nodeid,
            str(test.get("outcome")),
            float(test.get("duration_s") or 0.0),
            float(command) if isinstance(command, int | float) else None,
        )
    return plat


def sorted_platforms(plats: Iterable[PlatformResult]) -> list[PlatformResult]:
    return sorted(plats, key=lambda p: sort_key(Platform.parse(p.platform)))


def _times(ratio: float) -> str:
    """``2.3x``, and ``13x`` from 10 on: four characters, so the matrix keeps to 80 columns."""
    return f"{ratio:.1f}x" if ratio < 9.95 else f"{ratio:.0f}x"
