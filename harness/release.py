"""A release against the one before it, and the platforms of one index against each other.

Two image-level checks, both static (nothing runs):

- ``provenance``: the platforms of one index say they were built from the same sources. The
  OCI keys ``org.opencontainers.image.revision``, ``.version`` and ``.source`` (as manifest
  annotations, index-entry annotations or config labels) agree across platforms, and so do
  their creation times, within :data:`CREATED_SPREAD`; attestation manifests (BuildKit's
  SBOM and SLSA provenance) are on every platform or the check says which lack them, and
  fails for the kinds a run requires (``--require-attestations``).
- ``baseline``: a candidate against the release before it (``--baseline REF``). It fails
  when the candidate lacks a platform the baseline had, and says per platform what changed:
  compressed and uncompressed size, ELF files added, removed or of another architecture,
  and the static checks' findings that are new.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Protocol

from .checks import FAILED, PASSED, SKIPPED, CheckResult, builtin_checks
from .layers import Filesystem
from .manifest import ImageManifest, Index
from .platform import Platform, sort_key
from .sources import DocumentSource, Resolved, Source

if TYPE_CHECKING:
    from .planner import Target

#: The checks of an index as a whole, as the report and the gate name them. ``provenance``
#: runs on every image; ``baseline`` where the run names the release before.
PROVENANCE_CHECK = "provenance"
BASELINE_CHECK = "baseline"
IMAGE_CHECKS = (PROVENANCE_CHECK, BASELINE_CHECK)
OCI_PREFIX = "org.opencontainers.image."
#: The keys that say what an image was built from, compared across platforms; ``created``
#: is compared as a time, within CREATED_SPREAD.
SOURCE_KEYS = ("revision", "version", "source")
#: Platforms of one release built further apart than this were not built from one run:
#: a platform pushed again later, or left over from an older release. Builds of one
#: release on separate runners are minutes apart; a whole day is not one build.
CREATED_SPREAD = timedelta(hours=24)
PREDICATE_TYPE = "in-toto.io/predicate-type"
#: The attestation kinds ``--require-attestations`` names.
ATTESTATION_KINDS = ("sbom", "provenance")
#: The provenance check's skip reason that the gate accepts: nothing in the index says
#: where it came from, so there is nothing to compare.
NO_PROVENANCE = "no-provenance"
#: The skip reason each image check may pass the gate with.
IMAGE_SKIPS = {PROVENANCE_CHECK: NO_PROVENANCE}
#: What a platform with no change of size, ELF files or findings says.
UNCHANGED = "unchanged"
#: How many paths a change lists per kind (added, removed, changed); the counts are whole.
MAX_PATHS = 100


def attestation_kinds(items: Iterable[str]) -> tuple[str, ...]:
    """``sbom,provenance`` (or each on its own) -> its kinds, once each; a ValueError names an
    unknown one and the known ones."""
    kinds = tuple(dict.fromkeys(k.strip().lower() for item in items for k in item.split(",") if k.strip()))
    unknown = [k for k in kinds if k not in ATTESTATION_KINDS]
    if unknown:
        raise ValueError(f"{', '.join(unknown)} is no attestation kind; name {' or '.join(ATTESTATION_KINDS)}")
    return kinds


def attestation_kind(predicate_type: str) -> str:
    """``sbom`` for SPDX and CycloneDX documents, ``provenance`` for SLSA, else the type itself."""
    low = predicate_type.lower()
    if "spdx" in low or "cyclonedx" in low:
        return "sbom"
    if "slsa.dev/provenance" in low:
        return "provenance"
    return predicate_type


# --- provenance ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Origin:
    """What one platform of an index says of where it came from."""

    platform: str
    digest: str
    #: key (``revision``, ``version``, ``source``, ``created``) -> value.
    says: Mapping[str, str] = field(default_factory=dict)
    #: One platform that says two things: its manifest annotation and its config label differ.
    conflicts: tuple[str, ...] = ()
    #: Kinds of the attestation manifests attached to it (``sbom``, ``provenance``, other types).
    attestations: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"digest": self.digest, **dict(self.says), "attestations": list(self.attestations)}


def origins(source: Source, resolved: Resolved) -> list[Origin]:
    """Each platform of ``resolved`` as it says where it came from: manifest annotations,
    then its index entry's, then config labels (and the config's ``created``)."""
    root = source.document(resolved.digest) if isinstance(source, DocumentSource) else None
    entries: dict[str, Mapping[str, str]] = {}
    if isinstance(root, Index):
        entries = {d.digest: d.annotations for d in root.manifests}
    out = []
    for platform, digest in resolved.entries:
        config = source.config(digest)
        manifest = source.manifest(digest) if isinstance(source, DocumentSource) else None
        layers: list[Mapping[str, str]] = [
            manifest.annotations if manifest is not None else {},
            entries.get(digest, {}),
            config.labels,
        ]
        says: dict[str, str] = {}
        conflicts = []
        for key in (*SOURCE_KEYS, "created"):
            found = {m[OCI_PREFIX + key] for m in layers if m.get(OCI_PREFIX + key)}
            # A build time stamped twice may differ by the seconds between the two stamps.
            if len(found) > 1 and key != "created":
                conflicts.append(f"{platform} says two {key}s: {' and '.join(sorted(found))}")
            value = next((m[OCI_PREFIX + key] for m in layers if m.get(OCI_PREFIX + key)), "")
            if key == "created" and not value:
                value = config.created
            if value:
                says[key] = value
        kinds: list[str] = []
        if isinstance(root, Index) and isinstance(source, DocumentSource):
            for att in root.attestations_of(digest):
                doc = source.document(att.digest)
                layers_of = doc.layers if isinstance(doc, ImageManifest) else ()
                kinds.extend(attestation_kind(d.annotations.get(PREDICATE_TYPE, "")) for d in layers_of)
        kinds = [k for k in dict.fromkeys(kinds) if k]
        out.append(Origin(str(platform), digest, says, tuple(conflicts), tuple(kinds)))
    return sorted(out, key=lambda o: _order(o.platform))


def _order(name: str) -> tuple[Any, ...]:
    """Platforms in the report's order; one this version cannot parse goes last, by name."""
    try:
        return (0, *sort_key(Platform.parse(name)))
    except ValueError:
        return (1, name)


def _names(platforms: Sequence[str]) -> str:
    return ", ".join(platforms)


def _disagreement(key: str, groups: Mapping[str, list[str]], total: int) -> str:
    """``linux/arm64 says revision bbb; the other 10 platforms say aaa``, or every group."""

    def said(value: str, n: int) -> str:
        verb = "says" if n == 1 else "say"
        return f"{verb} {key} {value}" if value else f"{verb} no {key}"

    ranked = sorted(groups.items(), key=lambda g: -len(g[1]))
    (top, most), rest = ranked[0], ranked[1:]
    if len(most) > max(len(p) for _, p in rest):
        odd = [f"{_names(p)} {said(v, len(p))}" for v, p in rest]
        others = total - sum(len(p) for _, p in rest)
        return f"{'; '.join(odd)}; the other {others} {'platform' if others == 1 else 'platforms'} {said(top, 2)}"
    return f"the platforms disagree on their {key}: " + "; ".join(f"{_names(p)} {said(v, len(p))}" for v, p in ranked)


_FRACTION = re.compile(r"(\.\d{6})\d+")


def parse_time(text: str) -> datetime | None:
    """An RFC 3339 time as images write it (``Z``, nanoseconds); None when it is not one."""
    try:
        when = datetime.fromisoformat(_FRACTION.sub(r"\1", text.strip()).replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def _span(delta: timedelta) -> str:
    seconds = delta.total_seconds()
    if seconds >= 2 * 86400:
        return f"{seconds / 86400:.0f} days"
    if seconds >= 7200:
        return f"{seconds / 3600:.0f} hours"
    if seconds >= 120:
        return f"{seconds / 60:.0f} minutes"
    return f"{seconds:.0f} seconds"


def check_provenance(found: Sequence[Origin], require: Sequence[str] = ()) -> CheckResult:
    """The ``provenance`` check of one index: see the module doc."""
    problems: list[str] = [c for o in found for c in o.conflicts]
    warnings: list[str] = []
    agreed: list[str] = []
    total = len(found)
    for key in SOURCE_KEYS:
        groups: dict[str, list[str]] = {}
        for o in found:
            groups.setdefault(o.says.get(key, ""), []).append(o.platform)
        if list(groups) == [""]:
            continue
        if len(groups) == 1:
            agreed.append(f"{key} {next(iter(groups))}")
        else:
            problems.append(_disagreement(key, groups, total))
    times = {o.platform: parse_time(o.says["created"]) for o in found if o.says.get("created")}
    known = {p: t for p, t in times.items() if t is not None}
    if len(known) == 1:
        agreed.append(f"created {next(iter(known.values())):%Y-%m-%d %H:%M} UTC")
    elif len(known) > 1:
        newest = max(known.values())
        stale = [p for p, t in known.items() if newest - t > CREATED_SPREAD]
        if stale:
            oldest = newest - min(known.values())
            warnings.append(
                f"{_names(stale)} {'was' if len(stale) == 1 else 'were'} created up to {_span(oldest)} before the "
                f"newest platform ({newest:%Y-%m-%d %H:%M} UTC): not one build; pushed again from an older one?"
            )
        else:
            agreed.append(f"created within {_span(newest - min(known.values()))} of each other")
    kinds = list(dict.fromkeys(k for o in found for k in o.attestations))
    for kind in dict.fromkeys([*require, *kinds]):
        lacking = [o.platform for o in found if kind not in o.attestations]
        if not lacking:
            agreed.append(f"{kind} attestation on every platform")
        elif kind in require:
            problems.append(f"no {kind} attestation on {_names(lacking)} (--require-attestations {kind})")
        else:
            having = [o.platform for o in found if kind in o.attestations]
            warnings.append(f"{kind} attestations are attached to {_names(having)} but not to {_names(lacking)}")
    plural = "the one platform" if total == 1 else f"{total} platforms"
    if problems:
        return CheckResult(FAILED, "; ".join(problems), warnings=tuple(warnings), findings=tuple(problems))
    if not agreed and not warnings:
        say = "the one platform says" if total == 1 else f"the {plural} say"
        return CheckResult(
            SKIPPED,
            f"{say} nothing of where {'it comes' if total == 1 else 'they came'} from (no {OCI_PREFIX}revision, "
            "version, source or created, no attestation)",
            skip=NO_PROVENANCE,
        )
    verb = "says" if total == 1 else "agree on"
    detail = (
        f"{plural} {verb}: {'; '.join(agreed)}" if agreed else f"{plural}: nothing they agree on (see the warnings)"
    )
    return CheckResult(PASSED, detail, warnings=tuple(warnings))


# --- the release before ------------------------------------------------------------------------
@dataclass(frozen=True)
class Facts:
    """One platform of a release, as the comparison sees it."""

    platform: str
    digest: str
    #: Bytes of its config and layers as stored (None: a source that keeps no such sizes).
    compressed: int | None
    #: Bytes of the files of its flattened filesystem.
    uncompressed: int
    #: ELF path -> what it is (``ELF64 LSB AArch64``).
    elf: Mapping[str, str]
    #: ``check: sentence`` for every finding of the static checks, failing or warned of.
    findings: frozenset[str]


class FactsContext(Protocol):
    """What :func:`facts` asks of the run (:class:`harness.Harness` is one)."""

    def source(self, image: str) -> Source: ...

    def filesystem(self, target: Target) -> Filesystem: ...

    def check(self, name: str, target: Target) -> CheckResult: ...


def facts(run: FactsContext, target: Target) -> Facts:
    """The facts of one platform: sizes, ELF files and the static checks' findings."""
    source = run.source(target.image)
    compressed = None
    if isinstance(source, DocumentSource):
        manifest = source.manifest(target.digest)
        compressed = manifest.config.size + sum(layer.size for layer in manifest.layers)
    fs = run.filesystem(target)
    uncompressed = sum(node.size for node in fs.nodes.values() if node.kind == "file")
    elf = {path: (node.elf.identity if node.elf else "not readable as ELF") for path, node in fs.elf_files()}
    findings = frozenset(
        f"{spec.name}: {sentence}"
        for spec in builtin_checks()
        if not spec.needs_engine
        for sentence in run.check(spec.name, target).sentences
    )
    return Facts(str(target.platform), target.digest, compressed, uncompressed, elf, findings)


@dataclass(frozen=True)
class Change:
    """What one platform is in the candidate against the baseline."""

    platform: str
    #: ``kept``, ``added`` (only in the candidate) or ``dropped`` (only in the baseline).
    status: str
    compressed: tuple[int | None, int | None] = (None, None)
    uncompressed: tuple[int | None, int | None] = (None, None)
    elf_added: tuple[str, ...] = ()
    elf_removed: tuple[str, ...] = ()
    #: ``PATH: was X, now Y``.
    elf_changed: tuple[str, ...] = ()
    #: The counts, whole where the lists are cut at MAX_PATHS.
    counts: tuple[int, int, int] = (0, 0, 0)
    new_findings: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        added, removed, changed = self.counts
        return {
            "status": self.status,
            "compressed": {"before": self.compressed[0], "after": self.compressed[1]},
            "uncompressed": {"before": self.uncompressed[0], "after": self.uncompressed[1]},
            "elf": {
                "added": added,
                "removed": removed,
                "changed_architecture": changed,
                "added_paths": list(self.elf_added),
                "removed_paths": list(self.elf_removed),
                "changed_paths": list(self.elf_changed),
            },
            "new_findings": list(self.new_findings),
        }

    def summary(self) -> str:
        """One line: ``+1.2 MB (+3.0%) compressed; 2 ELF files added; 1 new finding``."""
        if self.status == "dropped":
            return "dropped: in the baseline, not in this release"
        parts = []
        before, after = self.compressed
        if before is not None and after is not None and before != after:
            parts.append(f"{_delta(before, after)} compressed")
        before, after = self.uncompressed
        if before is not None and after is not None and before != after:
            parts.append(f"{_delta(before, after)} of files")
        added, removed, changed = self.counts
        for n, what in ((added, "added"), (removed, "removed"), (changed, "of another architecture now")):
            if n:
                parts.append(f"{n} ELF {'file' if n == 1 else 'files'} {what}")
        if self.new_findings:
            n = len(self.new_findings)
            parts.append(f"{n} new {'finding' if n == 1 else 'findings'}")
        prefix = "added: not in the baseline" if self.status == "added" else ""
        return "; ".join(([prefix] if prefix else []) + (parts if self.status == "kept" else [])) or UNCHANGED


def _delta(before: int, after: int) -> str:
    diff = after - before
    sign = "+" if diff > 0 else "-"
    pct = f" ({diff / before:+.1%})" if before and abs(diff / before) >= 0.0005 else ""
    return f"{sign}{_size(abs(diff))}{pct}"


def _size(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def change(before: Facts | None, after: Facts | None) -> Change:
    if before is None and after is not None:
        return Change(after.platform, "added", (None, after.compressed), (None, after.uncompressed))
    if after is None and before is not None:
        return Change(before.platform, "dropped", (before.compressed, None), (before.uncompressed, None))
    assert before is not None
    assert after is not None
    added = sorted(set(after.elf) - set(before.elf))
    removed = sorted(set(before.elf) - set(after.elf))
    changed = sorted(p for p in set(before.elf) & set(after.elf) if before.elf[p] != after.elf[p])
    return Change(
        after.platform,
        "kept",
        (before.compressed, after.compressed),
        (before.uncompressed, after.uncompressed),
        tuple(f"{p} ({after.elf[p]})" for p in added[:MAX_PATHS]),
        tuple(f"{p} ({before.elf[p]})" for p in removed[:MAX_PATHS]),
        tuple(f"{p}: was {before.elf[p]}, now {after.elf[p]}" for p in changed[:MAX_PATHS]),
        (len(added), len(removed), len(changed)),
        tuple(sorted(after.findings - before.findings)),
    )


@dataclass(frozen=True)
class Comparison:
    """A candidate index against its baseline, platform by platform."""

    baseline: str
    baseline_digest: str
    changes: tuple[Change, ...]

    @property
    def dropped(self) -> list[str]:
        return [c.platform for c in self.changes if c.status == "dropped"]

    @property
    def added(self) -> list[str]:
        return [c.platform for c in self.changes if c.status == "added"]

    def result(self) -> CheckResult:
        """The ``baseline`` check: it fails on a platform the baseline had and this release lacks."""
        where = f"the baseline {self.baseline} ({self.baseline_digest[:19]})"
        new = sum(len(c.new_findings) for c in self.changes)
        tail = f"; {new} {'finding' if new == 1 else 'findings'} new since it" if new else ""
        added = f"; added: {_names(self.added)}" if self.added else ""
        if self.dropped:
            dropped = _names(self.dropped)
            were = "was" if len(self.dropped) == 1 else "were"
            return CheckResult(
                FAILED,
                f"{dropped} {were} in {where} and {'is' if len(self.dropped) == 1 else 'are'} not in this index: "
                f"a release must not lose a platform (push it, or compare with --baseline against the release "
                f"that dropped it on purpose){added}{tail}",
                findings=tuple(f"{p} dropped" for p in self.dropped),
            )
        kept = sum(1 for c in self.changes if c.status == "kept")
        return CheckResult(PASSED, f"every platform of {where} is here ({kept}){added}{tail}")

    def to_json(self) -> dict[str, Any]:
        return {
            "ref": self.baseline,
            "digest": self.baseline_digest,
            "dropped": self.dropped,
            "added": self.added,
            "platforms": {c.platform: c.to_json() for c in self.changes},
        }


def compare(baseline: str, baseline_digest: str, before: Iterable[Facts], after: Iterable[Facts]) -> Comparison:
    """Platform by platform, in platform order, every platform of either side."""
    old = {f.platform: f for f in before}
    new = {f.platform: f for f in after}
    names = sorted(set(old) | set(new), key=_order)
    return Comparison(baseline, baseline_digest, tuple(change(old.get(n), new.get(n)) for n in names))
