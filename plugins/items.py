"""Built-in check items: they run for every (image, platform) even with no user tests.

Per image, an ``index`` item (requested platforms present?), a ``provenance`` item (its
platforms built from the same sources?) and, with ``--baseline``, a ``baseline`` item (no
platform lost since the release before); per platform one item for each
entry of :data:`harness.checks.BUILTIN_CHECKS`, and the ``probe`` that times a few commands
for the slowdown. They are ordinary pytest items, so they count in the exit status, show in
JUnit and are distributed by xdist.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import pytest

from harness.checks import FAILED, PASSED, SKIPPED, CheckResult, check_names
from harness.errors import MultiarchError
from harness.planner import ImagePlan, Target
from harness.records import CheckRecord, CoverageRecord, ImageCheckRecord, ProbeRecord, Record, ResolveRecord, Subject
from harness.release import BASELINE_CHECK, PROVENANCE_CHECK

from .state import State

INDEX = "index"
PROBE = "probe"


class CheckFailed(Exception):
    """A built-in check found a defect; its message is the whole story."""


class ImageNode(pytest.Collector):
    """Groups the built-in checks of one image under ``multiarch:IMAGE``."""

    def collect(self) -> list[pytest.Item | pytest.Collector]:  # pragma: no cover - built directly
        return []


class CheckItem(pytest.Item):
    """One built-in check (a name of the table, ``index`` or ``probe``) of one image or platform."""

    def __init__(
        self,
        *,
        state: State,
        ref: str,
        check: str,
        target: Target | None = None,
        plan: ImagePlan | None = None,
        error: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.state = state
        self.ref = ref
        self.check = check
        self.target = target
        self.plan = plan
        self.error = error
        self.result: CheckResult | None = None
        #: What an image check compared, for the report.
        self.data: dict[str, Any] = {}
        self.add_marker(pytest.mark.multiarch_check)

    def runtest(self) -> None:
        try:
            self.result = self._run()
        except (MultiarchError, OSError) as exc:  # the image could not be read: a layer too large, a disk full
            self.result = CheckResult(FAILED, str(exc))
        if self.result.outcome == FAILED:
            raise CheckFailed(self.result.detail)
        if self.result.outcome == SKIPPED:
            pytest.skip(self.result.detail)

    def _run(self) -> CheckResult:
        if self.error is not None:
            return CheckResult(FAILED, self.error)
        if self.plan is not None:
            return self.plan.coverage()
        harness = self.state.harness
        if self.check == PROVENANCE_CHECK:
            result, origins = harness.provenance(self.ref)
            self.data = {"platforms": {o.platform: o.to_json() for o in origins}}
            return result
        if self.check == BASELINE_CHECK:
            baseline = self.state.opts.baseline_for(self.ref)
            assert baseline is not None
            comparison = harness.compare(self.ref, baseline)
            self.data = comparison.to_json()
            return comparison.result()
        assert self.target is not None
        if self.check == PROBE:
            return harness.probe(self.target)
        return harness.check(self.check, self.target)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, CheckFailed):
            where = f"{self.target.platform}: " if self.target is not None else ""
            return f"{self.ref}: {where}{excinfo.value}"
        return str(super().repr_failure(excinfo, style=style))

    def reportinfo(self) -> tuple[str, int | None, str]:
        return ("multiarch", None, f"{self.ref} {self.name}")

    def record(self, report: pytest.TestReport) -> Record | None:
        """The record this item's report carries to the controller."""
        if report.when != "call" and not (report.when == "setup" and not report.passed):
            return None
        if self.result is not None:
            outcome, detail = self.result.outcome, self.result.detail
        else:
            outcome = FAILED if report.failed else (SKIPPED if report.skipped else PASSED)
            detail = report.longreprtext.strip().splitlines()[-1] if report.longreprtext.strip() else ""
        if self.error is not None:
            return ResolveRecord(self.ref, self.error)
        if self.target is None and self.plan is None:
            result = self.result
            return ImageCheckRecord(
                self.ref,
                self.check,
                outcome,
                detail,
                result.warnings if result is not None else (),
                result.skip if result is not None else "",
                self.data,
            )
        if self.plan is not None:
            plan = self.plan
            return CoverageRecord(
                self.ref,
                plan.digest,
                outcome,
                detail,
                plan.present,
                plan.missing,
                tuple(t.platform for t in plan.targets) + plan.missing,
                plan.is_index,
                plan.notes,
            )
        assert self.target is not None
        subject = Subject.of(self.target, self.state.selected_on(self.target))
        if self.check == PROBE:
            samples = self.result.samples if self.result is not None else None
            return ProbeRecord(subject, dict(samples or {}))
        result = self.result
        return CheckRecord(
            subject,
            self.check,
            outcome,
            detail,
            result.command_s if result is not None else None,
            result.warnings if result is not None else (),
            result.skip if result is not None else "",
        )


def for_image(session: pytest.Session, state: State, ref: str, tested: Collection[str] = ()) -> list[pytest.Item]:
    """The built-in items of ``ref``; ``tested`` holds the target keys user tests run on
    (those need no probe under ``--slowdown-probe auto``: the tests are the samples)."""
    # An explicit node id: under the session, pytest would otherwise prefix "::".
    parent = ImageNode.from_parent(session, name=f"multiarch:{ref}", nodeid=f"multiarch:{ref}")
    try:
        plan = state.plan(ref)
    except MultiarchError as exc:
        return [CheckItem.from_parent(parent, name=INDEX, state=state, ref=ref, check=INDEX, error=f"{exc}")]
    out: list[pytest.Item] = [CheckItem.from_parent(parent, name=INDEX, state=state, ref=ref, check=INDEX, plan=plan)]
    whole = [PROVENANCE_CHECK] + ([BASELINE_CHECK] if state.opts.baseline_for(ref) else [])
    out.extend(CheckItem.from_parent(parent, name=name, state=state, ref=ref, check=name) for name in whole)
    for target in plan.targets:
        probe = state.opts.probe == "always" or (state.opts.probe == "auto" and target.key not in tested)
        for check in (*check_names(), PROBE) if probe else check_names():
            out.append(
                CheckItem.from_parent(
                    parent, name=f"{check}[{target.platform}]", state=state, ref=ref, check=check, target=target
                )
            )
    return out
