"""Reporting, on the controller only: records folded into the report, the matrix printed,
the JSON, HTML, Markdown and JUnit files written, and the harness closed after them, so
the order of other plugins' hooks does not matter."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from harness import records
from harness.engine import Engine, EngineError
from harness.html import write_html
from harness.labels import LABEL_SESSION
from harness.records import CheckRecord, CoverageRecord, TestRecord
from harness.reference import short_name
from harness.report import Report, worst, write_atomic
from harness.timings import merge
from harness.timings import table as timings_table

from .junit import split_by_platform
from .state import RECORDER, State

#: The attribute of a test report that carries its record (``record.to_data()``), which
#: pytest-xdist sends to the controller with the report.
RECORD = "multiarch_record"


def one_line(report: pytest.TestReport) -> str:
    text = report.longreprtext.strip().splitlines()
    errors = [line[2:].strip() for line in text if line.startswith("E ")]
    return (errors[0] if errors else (text[-1] if text else "failed"))[:300]


def _crashed(last: records.Record, report: pytest.TestReport) -> records.Record | None:
    """``last``, the record of the test or check a worker crashed in, as a failure."""
    detail = one_line(report)
    if isinstance(last, TestRecord):
        return replace(last, outcome=report.outcome, detail=detail, duration_s=0.0, command_s=None)
    if isinstance(last, CheckRecord):
        return replace(last, outcome=report.outcome, detail=detail, command_s=None, warnings=(), skip="")
    if isinstance(last, CoverageRecord):
        return replace(last, outcome=report.outcome, detail=detail)
    return None  # a probe or a resolve failure: nothing in them to fail


class Reporter:
    """On the controller only: folds records into the report, writes JSON, prints the matrix."""

    def __init__(self, state: State) -> None:
        self.state = state
        self.report = Report(max_slowdown=state.opts.max_slowdown)
        self.swept = 0
        #: Outcome of each test that runs on no platform (plain tests beside the image's).
        self.others: dict[str, str] = {}
        #: The last record seen of each test, for the reports that come without one.
        self._last: dict[str, records.Record] = {}
        #: Whether the session's end was seen (pytest_sessionfinish) or dealt with otherwise.
        self.finished = False

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        if not self.state.opts.images:
            return
        for engine in self._engines():
            with contextlib.suppress(EngineError):
                self.swept += engine.sweep_stale(self.state.session_id)

    def _engines(self) -> Iterator[Engine]:
        """The default engine and each engine a platform is routed to; unreachable ones left out."""
        harness = self.state.harness
        for platform in [None, *(p for p, _ in self.state.opts.engines)]:
            with contextlib.suppress(EngineError):
                yield harness.engine if platform is None else harness.engine_for(platform)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        data = getattr(report, RECORD, None)
        rec = records.from_data(data) if isinstance(data, dict) else None
        last = self._last.get(report.nodeid)
        if rec is None and report.failed and last is not None:
            # A failure reported here, not by the worker that ran the test: pytest-xdist's for
            # a worker that crashed in it. It counts against the test's platform like any other.
            rec = _crashed(last, report)
        if rec is not None:
            self._last[report.nodeid] = rec
            self.report.add(rec)
        elif not report.nodeid.startswith("multiarch:"):
            self.others[report.nodeid] = worst(self.others.get(report.nodeid, "passed"), report.outcome)

    @property
    def _wanted(self) -> bool:
        """Whether this run is about images at all: then it reports, even if cut short."""
        return bool(self.state.opts.images or self.report.images)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """After every other plugin's: this process's containers go first, then any that a
        worker left, then the reports are written."""
        self.finished = True
        try:
            self.state.close()
        finally:
            self._finish(session)

    def abandon(self) -> None:
        """The session never began or never finished: stop the background work, remove
        this process's containers and any other of the session's. No report is written:
        nothing was checked (and the gate refuses a run without one)."""
        self.finished = True
        if not self.state.has_harness:
            return
        try:
            self.state.close()
        finally:
            self._sweep()

    def _sweep(self) -> None:
        """Containers of workers that died, or of starts cut short, still carry this
        session's label."""
        for engine in self._engines():
            with contextlib.suppress(EngineError):
                engine.remove_labelled({LABEL_SESSION: self.state.session_id})

    def _finish(self, session: pytest.Session) -> None:
        if not self._wanted:
            return  # nothing ran on an engine: do not go looking for one
        harness = self.state.harness
        try:
            engine = harness.engine
            self.report.host_platform, self.report.engine = str(engine.platform), engine.description
            self.report.engines = [
                {**e.survey().to_data(), "engine": e.description} for e in harness.engines() if e.surveyed
            ]
        except EngineError:
            self.report.engine = "unreachable"
        self._sweep()
        if session.exitstatus == pytest.ExitCode.OK and self.report.over_limit():
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        recorder = session.config.stash[RECORDER]
        self.report.run = recorder.info(session)
        self.report.timings = self._timings(recorder.worker_timings)
        outcomes = list(self.others.values())
        self.report.run.other_tests = {o: outcomes.count(o) for o in ("passed", "failed", "skipped")}
        if self.state.opts.json_path:
            self.report.write_json(self.state.opts.json_path)
        if self.state.opts.html_path:
            write_html(self.report, self.state.opts.html_path)
        summary = os.environ.get("GITHUB_STEP_SUMMARY")
        if self.state.opts.markdown_path or summary:
            markdown = self.report.markdown()
            if self.state.opts.markdown_path:
                write_atomic(self.state.opts.markdown_path, markdown)
            if summary:  # GitHub collects what every step appends
                with open(summary, "a") as fh:
                    fh.write(markdown)

    def _timings(self, workers: dict[str, Any]) -> dict[str, Any]:
        """This process's timings and its workers', and the run's wall time."""
        harness = self.state.harness
        images = merge(merge({}, harness.timings.to_data()), workers)
        out: dict[str, Any] = {
            "wall_s": round(time.monotonic() - harness.timings.t0, 3),
            "parallel": harness.parallel,
            "feed": harness.pool.feed,
            "images": images,
        }
        if harness.pool.load_failures:
            out["load_refused"] = list(harness.pool.load_failures)
        return out

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self._wanted or terminalreporter.config.option.collectonly:
            return
        tr = terminalreporter
        tr.section("multiarch: per-platform results")
        tr.write_line(self.report.matrix(width=tr._tw.fullwidth, colour=tr.hasmarkup))
        for image, plat in self.report.over_limit():
            tr.write_line(f"FAILED {short_name(image)} {plat.platform}: {plat.reason()}", red=True)
        if self.state.opts.timings and self.report.timings:
            tr.write_line(timings_table(self.report.timings, self.report.timings.get("wall_s")))
        for label, path in (("JSON", self.state.opts.json_path), ("HTML", self.state.opts.html_path)):
            if path:
                tr.write_line(f"{label} report: {path}")
        if self.swept:
            tr.write_line(f"removed {self.swept} containers left by earlier runs that crashed")

    def last_words(self) -> str:
        """A line for after pytest's own summary, when the run could run no container at all."""
        plats = [p for i in self.report.images.values() for p in i.platforms.values()]
        if not plats or any(p.mode in ("native", "emulated") for p in plats):
            return ""
        why = plats[0].mode_reason or "no platform could run here"
        if self.report.engine == "unreachable":
            why = f"no container engine answered ({why})"
        return f"multiarch: no container ran on any platform: {why}"

    def write_junit(self, config: pytest.Config) -> None:
        """Split pytest's JUnit file by platform and add the slowdown failures: pytest has
        written it by now (in its pytest_sessionfinish)."""
        xmlpath = getattr(config.option, "xmlpath", None)
        if xmlpath and self.report.images and os.path.exists(xmlpath):
            slow = [
                (plat.platform, f"multiarch:{image}::slowdown[{plat.platform}]", plat.limit_reason())
                for image, plat in self.report.over_limit()
            ]
            split_by_platform(xmlpath, slow)


REPORTER = pytest.StashKey[Reporter]()
