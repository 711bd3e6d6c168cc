"""What a run shows while it waits for pulls, audits and container starts.

``status``: on a terminal, while a test waits for a platform that is still being fetched,
one line rewritten in place says what is under way (``multiarch: waiting: pulling
linux/arm64 120/410 MB; auditing linux/s390x``), and is wiped before the test goes on.
``lines``: for CI logs, nothing but one line per platform as its container comes up
(``multiarch: linux/arm64 ready after 7.9s (pull 6.2s, start 0.7s)``). Both are drawn
from the test process's main thread only, between pytest's own output.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from typing import Any

import pytest

from harness.reference import short_name
from harness.timings import Timings

#: At most this often the status line is redrawn.
REDRAW_S = 0.5


def mode_for(choice: str, config: pytest.Config) -> str:
    """``auto`` made concrete: ``status`` on a terminal, ``lines`` in CI or a file."""
    if choice != "auto":
        return choice
    if os.environ.get("CI", "").strip().lower() not in ("", "0", "false"):
        return "lines"
    return "status" if sys.stdout.isatty() else "lines"


class Progress:
    def __init__(self, config: pytest.Config, timings: Timings, mode: str, several_images: bool) -> None:
        self.config = config
        self.timings = timings
        self.mode = mode
        self.several = several_images
        self._shown = 0  # characters of the status line on screen
        self._drawn_at = 0.0

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Before pytest writes a test's outcome: the status line goes, the ready lines come."""
        self.clear()
        self.ready_lines()

    def tick(self) -> None:
        """While the main thread waits: redraw the status line, or write the lines of
        platforms that came up."""
        if self.mode == "lines":
            self.ready_lines()
            return
        if self.mode != "status" or time.monotonic() - self._drawn_at < REDRAW_S:
            return
        self._drawn_at = time.monotonic()
        doing = self.timings.status()
        if not doing:
            return
        writer = self._writer()
        if writer is None:
            return
        text = f"multiarch: waiting: {doing}"[: max(writer.fullwidth - 1, 20)]
        with self._uncaptured():
            writer.write("\r" + text.ljust(self._shown) + "\r")
            writer.flush()
        self._shown = len(text)

    def clear(self) -> None:
        """Wipe the status line, if one is on screen."""
        writer = self._writer()
        if not self._shown or writer is None:
            return
        with self._uncaptured():
            writer.write("\r" + " " * self._shown + "\r")
            writer.flush()
        self._shown = 0

    def ready_lines(self) -> None:
        if self.mode != "lines":
            self.timings.take_ready()  # seen, not shown
            return
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is None:
            return
        for image, platform, after in self.timings.take_ready():
            phases = self.timings.seconds(image, platform)
            parts = [f"{name} {phases[name]:.1f}s" for name in ("audit", "pull", "start") if name in phases]
            name = f"{short_name(image)} {platform}" if self.several else platform
            detail = f" ({', '.join(parts)})" if parts else ""
            with self._uncaptured():
                reporter.write_line(f"multiarch: {name} ready after {after:.1f}s{detail}")

    def _writer(self) -> Any:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        return getattr(reporter, "_tw", None)

    def _uncaptured(self) -> Any:
        """Output capture is off while this draws (a fixture that waits is captured)."""
        capman = self.config.pluginmanager.get_plugin("capturemanager")
        return capman.global_and_fixture_disabled() if capman is not None else contextlib.nullcontext()
