"""What the run did, for the report's ``complete`` flag and ``run`` section.

A report is complete only when every item the run selected ran to its end: not when the
session was interrupted or terminated, stopped early (-x), failed to collect, lost a
worker, or had tests deselected. On the controller a :class:`RunRecorder` watches the
session's hooks; under pytest-xdist the workers collect, so they send the ids they
deselected back in ``workeroutput`` and the controller learns the selected ids from their
collections.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import signal
import threading
from collections.abc import Callable, Generator
from types import FrameType
from typing import Any

import pytest

from harness.report import RunInfo
from harness.timings import merge

DESELECTED = "multiarch_deselected"
TIMINGS = "multiarch_timings"
#: Signals that end a run like Ctrl-C does: cleanup runs and the report is written, incomplete.
TERMINATING = tuple(s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None)) if s is not None)


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def harness_version() -> str:
    try:
        return importlib.metadata.version("pytest-multiarch")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed)"


class Signals:
    """SIGTERM and SIGHUP raise KeyboardInterrupt in the main thread, so a cancelled CI job
    or ``timeout`` cleans up exactly as Ctrl-C does. Once the session is finishing (its
    cleanup and reports under way), further signals are noted and ignored: cleanup must not
    be cut short. Before that, each one raises again, in case the first was swallowed."""

    def __init__(self) -> None:
        self.received: str | None = None
        self.finishing = False
        self._old: dict[int, Any] = {}

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in TERMINATING:
            self._old[signum] = signal.signal(signum, self._handle)

    def restore(self) -> None:
        for signum, old in self._old.items():
            signal.signal(signum, old)
        self._old.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.finishing:
            return
        name = signal.Signals(signum).name
        self.received = self.received or name
        raise KeyboardInterrupt(f"{name} received")


class RunRecorder:
    """On the controller: what was selected, what finished, and why the run is incomplete."""

    def __init__(self, config: pytest.Config, signals: Signals, settings: Callable[[], dict[str, Any]]) -> None:
        self.config = config
        self.signals = signals
        self.settings = settings
        self.started = _now()
        self.selected: list[str] | None = None
        self.deselected: list[str] = []
        self.finished: set[str] = set()
        self.collect_errors: list[str] = []
        self.collect_skipped: list[str] = []
        self.crashed: list[str] = []
        self.crash_items: list[str] = []
        self.interrupted = False
        #: Where the workers' time went, folded (harness.timings.merge).
        self.worker_timings: dict[str, Any] = {}

    # --- without xdist, and in each worker ---------------------------------------------------
    def pytest_deselected(self, items: list[pytest.Item]) -> None:
        self.deselected.extend(item.nodeid for item in items)

    def dropped(self, nodeids: list[str]) -> None:
        """Items removed from the collection without pytest_deselected: left out all the same."""
        self.deselected.extend(n for n in nodeids if n not in self.deselected)

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        if not _distributed(self.config):
            self.selected = [item.nodeid for item in session.items]

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.collect_errors.append(report.nodeid or "<session>")
        elif report.skipped and report.nodeid not in self.collect_skipped:
            # A module skipped whole (importorskip, a module-level skip): its tests, of any
            # platform, were never even collected, so nothing can say what they would have found.
            self.collect_skipped.append(report.nodeid)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "teardown":
            self.finished.add(report.nodeid)

    def pytest_keyboard_interrupt(self, excinfo: pytest.ExceptionInfo[BaseException]) -> None:
        self.interrupted = True

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> Generator[None, None, None]:
        """Before any other plugin's session-finish: from here on, signals wait for cleanup."""
        self.signals.finishing = True
        return (yield)

    # --- pytest-xdist, on the controller -------------------------------------------------------
    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        if self.selected is None:
            self.selected = list(ids)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        output = getattr(node, "workeroutput", None) or {}
        merge(self.worker_timings, output.get(TIMINGS) or {})
        if not self.deselected:
            # Every worker collects the same items and deselects the same: one says for all.
            self.deselected.extend(output.get(DESELECTED) or ())
        if error:
            self.crashed.append(f"{getattr(node.gateway, 'id', '?')}: {str(error).strip()[:200]}")

    @pytest.hookimpl(optionalhook=True)
    def pytest_handlecrashitem(self, crashitem: str, report: Any, sched: Any) -> None:
        self.crash_items.append(crashitem)

    # --- the verdict ---------------------------------------------------------------------------
    def info(self, session: pytest.Session) -> RunInfo:
        why: list[str] = []
        if self.config.option.collectonly:
            why.append("collection only (--collect-only): nothing ran")
        if self.signals.received:
            why.append(f"terminated by {self.signals.received}")
        elif self.interrupted or session.exitstatus == pytest.ExitCode.INTERRUPTED:
            why.append("interrupted (KeyboardInterrupt)")
        if session.shouldstop or session.shouldfail:
            why.append(f"stopped early: {session.shouldstop or session.shouldfail}")
        if self.collect_errors:
            why.append(f"{len(self.collect_errors)} collection error(s): {', '.join(self.collect_errors[:3])}")
        if self.collect_skipped:
            why.append(
                f"{len(self.collect_skipped)} module(s) skipped whole at collection, their tests never collected: "
                + ", ".join(self.collect_skipped[:3])
            )
        if self.crashed or self.crash_items:
            running = f", running {', '.join(dict.fromkeys(self.crash_items))}" if self.crash_items else ""
            why.append(f"xdist worker crashed ({'; '.join(dict.fromkeys(self.crashed)) or '?'}){running}")
        if self.deselected:
            why.append(f"{len(self.deselected)} item(s) deselected (-k, -m, --deselect, --lf or a plugin)")
        selected = self.selected or []
        if self.selected is None and not why:
            why.append("the run never finished collecting")
        unfinished = [nodeid for nodeid in selected if nodeid not in self.finished]
        if unfinished:
            why.append(f"{len(unfinished)} of {len(selected)} selected test(s) did not run to their end")
        return RunInfo(
            command=["pytest", *self.config.invocation_params.args],
            started=self.started,
            finished=_now(),
            harness_version=harness_version(),
            exit_status=int(session.exitstatus),
            selected=len(selected),
            deselected=list(self.deselected),
            incomplete=why,
            settings=self.settings(),
        )


def _distributed(config: pytest.Config) -> bool:
    """Whether pytest-xdist distributes this session: then the workers collect, not this process."""
    return config.pluginmanager.get_plugin("dsession") is not None


def worker_output(config: pytest.Config, deselected: list[str], timings: dict[str, Any]) -> None:
    """In an xdist worker: hand the controller what -k/-m deselected here, and where this
    worker's time went (:mod:`harness.timings`)."""
    workeroutput = getattr(config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput[DESELECTED] = deselected
        workeroutput[TIMINGS] = timings
