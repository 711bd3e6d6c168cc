"""Where a run's time goes, per image and platform, and what it is waiting for right now.

Each process of a run keeps one :class:`Timings`: the seconds each phase took for each
(image, platform): ``resolve`` (per image), ``audit`` (reading the layers), ``pull`` (the
engine fetching the image, or loading it from the blobs the audit read), ``start``,
``wait`` (how long the checks and tests waited for what the background was still
preparing: it is part of their own time), ``checks`` (the built-in checks' items),
``tests``, ``probe`` and ``cleanup``; and when
each platform was ``ready`` (its container up), in seconds from the start. Phases of
different platforms overlap, so their sum is more than the run's wall time.

It is also what a progress display reads: :meth:`Timings.status` says what is under way
(pulling linux/arm64: 120 of 410 MB; auditing linux/s390x; starting linux/amd64), and
:meth:`Timings.take_ready` the platforms that became ready since it was last asked.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

PHASES = ("resolve", "audit", "pull", "start", "wait", "checks", "tests", "probe", "cleanup")
#: The phases a platform has (``resolve`` is the image's).
PLATFORM_PHASES = PHASES[1:]
#: What a phase under way is called in a status line.
DOING = {
    "resolve": "resolving",
    "audit": "auditing",
    "pull": "pulling",
    "load": "loading",
    "start": "starting",
    "cleanup": "removing",
}

Key = tuple[str, str]  # (image, platform); platform "" for the image itself


class Timings:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.t0 = clock()
        self._lock = threading.Lock()
        self._seconds: dict[Key, dict[str, float]] = {}
        self._ready: dict[Key, float] = {}
        self._unseen: list[Key] = []
        #: What is under way: key -> (phase, bytes done, bytes in all).
        self._doing: dict[Key, tuple[str, int, int]] = {}

    def add(self, image: str, platform: str, phase: str, seconds: float) -> None:
        with self._lock:
            phases = self._seconds.setdefault((image, platform), {})
            phases[phase] = phases.get(phase, 0.0) + seconds

    @contextmanager
    def span(self, image: str, platform: str, phase: str, *, shown: str | None = None) -> Iterator[None]:
        """Time ``phase`` of (image, platform) and show it as under way meanwhile."""
        start = self._clock()
        key = (image, platform)
        with self._lock:
            self._doing[key] = (shown or phase, 0, 0)
        try:
            yield
        finally:
            with self._lock:
                if self._doing.get(key, ("",))[0] == (shown or phase):
                    del self._doing[key]
            self.add(image, platform, phase, self._clock() - start)

    def progress(self, image: str, platform: str, done: int, total: int) -> None:
        """Bytes done of a transfer under way (a pull)."""
        key = (image, platform)
        with self._lock:
            phase = self._doing.get(key, ("pull",))[0]
            self._doing[key] = (phase, done, total)

    def ready(self, image: str, platform: str) -> None:
        """(image, platform)'s container is up: the first time counts."""
        key = (image, platform)
        with self._lock:
            if key not in self._ready:
                self._ready[key] = self._clock() - self.t0
                self._unseen.append(key)

    def take_ready(self) -> list[tuple[str, str, float]]:
        """The (image, platform, seconds from the start) that became ready since the last call."""
        with self._lock:
            out = [(image, platform, self._ready[image, platform]) for image, platform in self._unseen]
            self._unseen.clear()
        return out

    def status(self) -> str:
        """What is under way, one short line: ``pulling linux/arm64 120/410 MB; auditing linux/s390x``."""
        with self._lock:
            doing = sorted(self._doing.items(), key=lambda item: item[0])
        by_phase: dict[str, list[str]] = {}
        for (_image, platform), (phase, done, total) in doing:
            what = platform or "the index"
            if total:
                what += f" {done / 1e6:.0f}/{total / 1e6:.0f} MB"
            by_phase.setdefault(DOING.get(phase, phase), []).append(what)
        return "; ".join(f"{verb} {', '.join(names)}" for verb, names in by_phase.items())

    def seconds(self, image: str, platform: str = "") -> dict[str, float]:
        with self._lock:
            return dict(self._seconds.get((image, platform), {}))

    def to_data(self) -> dict[str, Any]:
        """``{image: {"resolve_s": s, "platforms": {platform: {"audit_s": s, ..., "ready_s": s}}}}``."""
        with self._lock:
            keys = set(self._seconds) | set(self._ready)
            out: dict[str, Any] = {}
            for image, platform in sorted(keys):
                entry = out.setdefault(image, {"platforms": {}})
                phases = {f"{phase}_s": round(s, 3) for phase, s in self._seconds.get((image, platform), {}).items()}
                if not platform:
                    entry.update(phases)
                    continue
                if (image, platform) in self._ready:
                    phases["ready_s"] = round(self._ready[image, platform], 3)
                entry["platforms"][platform] = phases
        return out


def merge(into: dict[str, Any], data: Mapping[str, Any]) -> dict[str, Any]:
    """Fold one process's :meth:`Timings.to_data` into another's: seconds add up, the
    earliest ``ready_s`` stands (each process has its own containers)."""
    for image, entry in data.items():
        mine = into.setdefault(image, {"platforms": {}})
        for name, value in entry.items():
            if name != "platforms" and isinstance(value, (int, float)):
                mine[name] = round(mine.get(name, 0.0) + value, 3)
        for platform, phases in (entry.get("platforms") or {}).items():
            target = mine["platforms"].setdefault(platform, {})
            for name, value in phases.items():
                if not isinstance(value, (int, float)):
                    continue
                if name == "ready_s":
                    target[name] = min(target.get(name, value), value)
                else:
                    target[name] = round(target.get(name, 0.0) + value, 3)
    return into


def table(timings: Mapping[str, Any], wall_s: float | None = None) -> str:
    """The breakdown as a plain table: one row per (image, platform), a column per phase."""
    from tabulate import tabulate

    from .platform import Platform, sort_key
    from .reference import short_name

    columns = ["ready", *PLATFORM_PHASES]
    rows = []
    images = timings.get("images") or {}
    several = len(images) > 1
    for image, entry in images.items():
        platforms = entry.get("platforms") or {}
        for platform in sorted(platforms, key=lambda p: _sort(p, Platform, sort_key)):
            phases = platforms[platform]
            name = f"{short_name(image)} {platform}" if several else platform
            rows.append([name, *(_secs(phases.get(f"{c}_s")) for c in columns)])
    resolve = sum(float(entry.get("resolve_s") or 0.0) for entry in images.values())
    head = f"seconds per platform (phases overlap); resolving the index: {resolve:.1f}s"
    if wall_s is not None:
        head += f"; the whole run: {wall_s:.1f}s"
    body: str = tabulate(rows, headers=["platform", *columns], tablefmt="simple", disable_numparse=True)
    return head + "\n" + body


def _secs(value: Any) -> str:
    return f"{value:.1f}" if isinstance(value, (int, float)) else "-"


def _sort(name: str, platform_type: Any, sort_key: Callable[[Any], Any]) -> Any:
    try:
        return (0, sort_key(platform_type.parse(name)))
    except ValueError:
        return (1, name)
