"""Built-in check items: they run for every (image, platform) even with no user tests.

Per image, an ``index`` item (requested platforms present?) and per platform ``config``,
``elf`` and ``uname`` items, and the ``probe`` that times a few commands for the slowdown.
They are ordinary pytest items, so they count in the exit status, show in JUnit, honour
``-k`` and are distributed by xdist.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING, Any

import pytest

from harness.checks import FAILED, PASSED, SKIPPED, CheckResult
from harness.report import KIND_CHECK, KIND_COVERAGE, KIND_PROBE, KIND_RESOLVE
from harness.session import ImagePlan, Target

if TYPE_CHECKING:
    from .plugin import State


class CheckFailed(Exception):
    """A built-in check found a defect; its message is the whole story."""


def base_record(target: Target, state: State) -> dict[str, Any]:
    """What every record of ``target`` carries, the count of user tests selected on it too:
    every process collects the same items, so any record of the platform can tell it."""
    return {
        "selected_tests": state.selected_tests.get(target.key, 0),
        "image": target.image,
        "index_digest": target.index_digest,
        "platform": str(target.platform),
        "digest": target.digest,
        "mode": target.mode.kind,
        "mode_reason": target.mode.reason,
        "engine": target.engine,
    }


class ImageNode(pytest.Collector):
    """Groups the built-in checks of one image under ``multiarch:IMAGE``."""

    def collect(self) -> list[pytest.Item | pytest.Collector]:  # pragma: no cover - built directly
        return []


class CheckItem(pytest.Item):
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
        self.add_marker(pytest.mark.multiarch_check)

    def runtest(self) -> None:
        self.result = self._run()
        if self.result.outcome == FAILED:
            raise CheckFailed(self.result.detail)
        if self.result.outcome == SKIPPED:
            pytest.skip(self.result.detail)

    def _run(self) -> CheckResult:
        if self.error is not None:
            return CheckResult(FAILED, self.error)
        harness = self.state.harness
        if self.check == "index":
            assert self.plan is not None
            return _coverage(self.plan)
        assert self.target is not None
        if self.check == "config":
            return harness.check_config(self.target)
        if self.check == "elf":
            return harness.check_elf(self.target)
        if self.check == "uname":
            if not self.target.mode.runnable and self.state.opts.strict:
                return CheckResult(
                    FAILED, f"cannot run {self.target.platform} here (--strict-platforms): {self.target.mode.reason}"
                )
            return harness.check_uname(self.target)
        if self.check == "probe":
            return harness.probe(self.target)
        raise ValueError(f"unknown check {self.check}")

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, CheckFailed):
            where = f"{self.target.platform}: " if self.target is not None else ""
            return f"{self.ref}: {where}{excinfo.value}"
        return str(super().repr_failure(excinfo, style=style))

    def reportinfo(self) -> tuple[str, int | None, str]:
        return ("multiarch", None, f"{self.ref} {self.name}")

    def record(self, report: pytest.TestReport) -> dict[str, Any] | None:
        """The record this item's report carries to the controller."""
        if report.when != "call" and not (report.when == "setup" and not report.passed):
            return None
        if self.result is not None:
            outcome, detail = self.result.outcome, self.result.detail
        else:
            outcome = FAILED if report.failed else (SKIPPED if report.skipped else PASSED)
            detail = report.longreprtext.strip().splitlines()[-1] if report.longreprtext.strip() else ""
        if self.check == "index":
            if self.error is not None:
                return {"image": self.ref, "kind": KIND_RESOLVE, "detail": self.error}
            assert self.plan is not None
            return {
                "image": self.ref,
                "index_digest": self.plan.digest,
                "kind": KIND_COVERAGE,
                "missing": [str(p) for p in self.plan.missing],
                "present": [str(p) for p in self.plan.present],
                "requested": [str(t.platform) for t in self.plan.targets] + [str(p) for p in self.plan.missing],
                "is_index": self.plan.is_index,
                "notes": list(self.plan.notes),
                "detail": detail,
                "outcome": outcome,
            }
        assert self.target is not None
        if self.check == "probe":
            samples = self.result.samples if self.result is not None else None
            return base_record(self.target, self.state) | {"kind": KIND_PROBE, "samples": samples or {}}
        return base_record(self.target, self.state) | {
            "kind": KIND_CHECK,
            "name": self.check,
            "outcome": outcome,
            "detail": detail,
            "command_s": self.result.command_s if self.result is not None else None,
            "warnings": list(self.result.warnings) if self.result is not None else [],
            "skip": self.result.skip if self.result is not None else "",
        }


def _coverage(plan: ImagePlan) -> CheckResult:
    present = ", ".join(str(p) for p in plan.present) or "none"
    note = ("; " + "; ".join(plan.notes)) if plan.notes else ""
    if plan.missing:
        missing = ", ".join(str(p) for p in plan.missing)
        return CheckResult(FAILED, f"missing from the index: {missing} (present: {present}){note}")
    if not plan.targets:
        return CheckResult(FAILED, f"no runnable platform in the index (entries: {present}){note}")
    return CheckResult(PASSED, f"{len(plan.targets)} platforms tested of {len(plan.present)} present{note}")


def for_image(session: pytest.Session, state: State, ref: str, tested: Collection[str] = ()) -> list[pytest.Item]:
    """The built-in items of ``ref``; ``tested`` holds the target keys user tests run on
    (those need no probe under ``--slowdown-probe auto``: the tests are the samples)."""
    # An explicit node id: under the session, pytest would otherwise prefix "::".
    parent = ImageNode.from_parent(session, name=f"multiarch:{ref}", nodeid=f"multiarch:{ref}")
    try:
        plan = state.plan(ref)
    except Exception as exc:
        return [CheckItem.from_parent(parent, name="index", state=state, ref=ref, check="index", error=f"{exc}")]
    out: list[pytest.Item] = [
        CheckItem.from_parent(parent, name="index", state=state, ref=ref, check="index", plan=plan)
    ]
    for target in plan.targets:
        probe = state.opts.probe == "always" or (state.opts.probe == "auto" and target.key not in tested)
        for check in ("config", "elf", "uname", "probe") if probe else ("config", "elf", "uname"):
            out.append(
                CheckItem.from_parent(
                    parent, name=f"{check}[{target.platform}]", state=state, ref=ref, check=check, target=target
                )
            )
    return out
