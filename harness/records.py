"""What a run produces, one record per outcome: typed, frozen, and plain data on the wire.

A built-in check, a user test, a slowdown probe, an index's coverage and an image that
could not be resolved each make one record. Records are what crosses process boundaries
(pytest-xdist workers send ``record.to_data()`` on their test reports and the controller
reads it back with :func:`from_data`), what :class:`harness.report.Report` is folded from,
and what the release gate reads a JSON report into.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from .platform import Platform

if TYPE_CHECKING:
    from .planner import Target


@dataclass(frozen=True)
class Subject:
    """The (image, platform) a record is about, as every record of it carries it."""

    image: str
    index_digest: str
    platform: Platform
    digest: str
    mode: str
    mode_reason: str = ""
    engine: str | None = None
    #: User tests the collection selected on this platform: every process collects the same
    #: items, so any record of the platform can tell it. None: not known (a report of old).
    selected_tests: int | None = None

    @classmethod
    def of(cls, target: Target, selected_tests: int | None = None) -> Subject:
        return cls(
            target.image,
            target.index_digest,
            target.platform,
            target.digest,
            target.mode.kind,
            target.mode.reason,
            target.engine,
            selected_tests,
        )

    def to_data(self) -> dict[str, Any]:
        return {
            "image": self.image,
            "index_digest": self.index_digest,
            "platform": _platform_data(self.platform),
            "digest": self.digest,
            "mode": self.mode,
            "mode_reason": self.mode_reason,
            "engine": self.engine,
            "selected_tests": self.selected_tests,
        }

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> Subject:
        return cls(**data | {"platform": Platform(**data["platform"])})


@dataclass(frozen=True)
class CheckRecord:
    """One built-in check of one platform (config, elf, uname, ...)."""

    kind: ClassVar[str] = "check"
    subject: Subject
    name: str
    outcome: str
    detail: str = ""
    #: Time spent in commands inside the container, where the check ran any.
    command_s: float | None = None
    #: Findings that did not fail the check.
    warnings: tuple[str, ...] = ()
    #: Why a skipped check was skipped, when it is a reason the gate accepts.
    skip: str = ""

    def to_data(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "subject": self.subject.to_data(),
            "name": self.name,
            "outcome": self.outcome,
            "detail": self.detail,
            "command_s": self.command_s,
            "warnings": list(self.warnings),
            "skip": self.skip,
        }

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> CheckRecord:
        return cls(
            Subject.from_data(data["subject"]),
            data["name"],
            data["outcome"],
            data.get("detail", ""),
            data.get("command_s"),
            tuple(data.get("warnings") or ()),
            data.get("skip", ""),
        )

    def to_json(self) -> dict[str, Any]:
        """The check as the report (schema 1) shows it."""
        return _check_json(self.outcome, self.detail, self.warnings, self.skip)


@dataclass(frozen=True)
class TestRecord:
    """One phase (setup, call, teardown) of one user test on one platform."""

    __test__: ClassVar[bool] = False
    kind: ClassVar[str] = "test"
    subject: Subject
    #: The test's name without its platform (``test_x.py::test_y[*]``): the same test on every
    #: platform shares it, which pairs them for the slowdown.
    name: str
    nodeid: str
    outcome: str
    detail: str = ""
    duration_s: float = 0.0
    #: Seconds of the test's commands inside its container (None: none timed).
    command_s: float | None = None

    def to_data(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "subject": self.subject.to_data(),
            "name": self.name,
            "nodeid": self.nodeid,
            "outcome": self.outcome,
            "detail": self.detail,
            "duration_s": self.duration_s,
            "command_s": self.command_s,
        }

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> TestRecord:
        return cls(
            Subject.from_data(data["subject"]),
            data["name"],
            data["nodeid"],
            data["outcome"],
            data.get("detail", ""),
            float(data.get("duration_s") or 0.0),
            data.get("command_s"),
        )


@dataclass(frozen=True)
class ProbeRecord:
    """The slowdown probe's command times on one platform: command -> median seconds."""

    kind: ClassVar[str] = "probe"
    subject: Subject
    samples: dict[str, float] = field(default_factory=dict)

    def to_data(self) -> dict[str, Any]:
        return {"kind": self.kind, "subject": self.subject.to_data(), "samples": dict(self.samples)}

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> ProbeRecord:
        samples = {str(k): float(v) for k, v in (data.get("samples") or {}).items()}
        return cls(Subject.from_data(data["subject"]), samples)


@dataclass(frozen=True)
class CoverageRecord:
    """Which requested platforms an image's index has (its ``index`` check)."""

    kind: ClassVar[str] = "coverage"
    image: str
    index_digest: str
    outcome: str
    detail: str = ""
    present: tuple[Platform, ...] = ()
    missing: tuple[Platform, ...] = ()
    #: Every platform the run was to test: the tested ones and the missing ones.
    requested: tuple[Platform, ...] = ()
    is_index: bool | None = None
    notes: tuple[str, ...] = ()

    def to_data(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "image": self.image,
            "index_digest": self.index_digest,
            "outcome": self.outcome,
            "detail": self.detail,
            "present": [_platform_data(p) for p in self.present],
            "missing": [_platform_data(p) for p in self.missing],
            "requested": [_platform_data(p) for p in self.requested],
            "is_index": self.is_index,
            "notes": list(self.notes),
        }

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> CoverageRecord:
        def plats(key: str) -> tuple[Platform, ...]:
            return tuple(Platform(**p) for p in data.get(key) or ())

        return cls(
            data["image"],
            data["index_digest"],
            data["outcome"],
            data.get("detail", ""),
            plats("present"),
            plats("missing"),
            plats("requested"),
            data.get("is_index"),
            tuple(data.get("notes") or ()),
        )


@dataclass(frozen=True)
class ImageCheckRecord:
    """A check of an image as a whole (its ``provenance``, its ``baseline``), with what it compared."""

    kind: ClassVar[str] = "image-check"
    image: str
    name: str
    outcome: str
    detail: str = ""
    warnings: tuple[str, ...] = ()
    skip: str = ""
    #: What the check compared, as the report shows it (per platform origins, the changes).
    data: dict[str, Any] = field(default_factory=dict)

    def to_data(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "image": self.image,
            "name": self.name,
            "outcome": self.outcome,
            "detail": self.detail,
            "warnings": list(self.warnings),
            "skip": self.skip,
            "data": dict(self.data),
        }

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> ImageCheckRecord:
        return cls(
            data["image"],
            data["name"],
            data["outcome"],
            data.get("detail", ""),
            tuple(data.get("warnings") or ()),
            data.get("skip", ""),
            dict(data.get("data") or {}),
        )

    def to_json(self) -> dict[str, Any]:
        """The check as the report (schema 1) shows it: outcome, detail, then what it compared."""
        return _check_json(self.outcome, self.detail, self.warnings, self.skip) | self.data


@dataclass(frozen=True)
class ResolveRecord:
    """An image that could not be resolved to its platforms at all."""

    kind: ClassVar[str] = "resolve"
    image: str
    detail: str

    def to_data(self) -> dict[str, Any]:
        return {"kind": self.kind, "image": self.image, "detail": self.detail}

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> ResolveRecord:
        return cls(data["image"], data["detail"])


def _check_json(outcome: str, detail: str, warnings: tuple[str, ...], skip: str) -> dict[str, Any]:
    """A check in the report: outcome and detail, warnings and skip only when it has them."""
    out: dict[str, Any] = {"outcome": outcome, "detail": detail}
    if warnings:
        out["warnings"] = list(warnings)
    if skip:
        out["skip"] = skip
    return out


def _platform_data(platform: Platform) -> dict[str, Any]:
    """A platform field by field: exact for any os, where its string form parses only known ones."""
    return {"os": platform.os, "architecture": platform.architecture, "variant": platform.variant}


Record = CheckRecord | TestRecord | ProbeRecord | CoverageRecord | ImageCheckRecord | ResolveRecord
_KINDS: dict[str, Any] = {
    cls.kind: cls for cls in (CheckRecord, TestRecord, ProbeRecord, CoverageRecord, ImageCheckRecord, ResolveRecord)
}


def from_data(data: dict[str, Any]) -> Record:
    """The record that ``record.to_data()`` gave; a kind it does not know is a ValueError."""
    cls = _KINDS.get(data.get("kind", ""))
    if cls is None:
        raise ValueError(f"not a multiarch record: kind {data.get('kind')!r}")
    record: Record = cls.from_data(data)
    return record
