"""The release gate: judge a JSON report, and promote exactly the digest that passed.

    python -m harness gate REPORT.json [--require PLATFORMS] [--max-slowdown X]
    python -m harness promote SRC DEST --report REPORT.json [--require ...] [--max-slowdown X]

The gate fails closed: it says "go" only for a complete, schema-valid report in which every
required platform ran every built-in check, every selected test ran and passed, and every
limit asked for was measured and met. Anything it cannot prove is a reason to refuse.

Exit codes: 0 go (or promoted), 1 the release must not go out, 2 the report is unusable
(missing, not JSON, not schema 1, invalid against the schema) or the arguments are wrong.

``promote`` re-resolves SRC, finds the image of the report that tested the same index
digest (the digest, not the reference string, decides), applies the gate's rules to it,
then tags exactly that index as DEST in the registry: blobs are mounted from SRC's
repository, never uploaded again, and only manifests are PUT.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .checks import PASSED, SKIPPED, builtin_checks, check_names
from .errors import MultiarchError
from .manifest import ImageManifest, Index
from .platform import PlatformError, parse_list
from .reference import ImageReferenceError, Reference, same_registry
from .registry import Registry, RegistryError
from .release import (
    ATTESTATION_KINDS,
    BASELINE_CHECK,
    IMAGE_CHECKS,
    IMAGE_SKIPS,
    PROVENANCE_CHECK,
    attestation_kinds,
)
from .report import SLOWDOWN_CHECK, ImageResult, PlatformResult, Report
from .sources import SourceError, open_source

SCHEMA_FILE = Path(__file__).parent / "schema" / "report-v1.json"

EXIT_GO = 0
EXIT_NO_GO = 1
EXIT_UNUSABLE = 2


class GateError(MultiarchError, ValueError):
    """The release must not go out (exit 1); the message says why."""


class ReportUnusable(GateError):
    """A report that cannot be judged at all (exit 2): missing, not JSON, another schema, invalid."""


def _validator() -> Any:
    return _validator_for(check_names())


@functools.cache
def _validator_for(names: tuple[str, ...]) -> Any:
    """The schema, its enum of check names taken from the table of built-in checks (the
    file's own list is the same for the checks this version ships: a test keeps it so)."""
    import jsonschema

    schema = json.loads(SCHEMA_FILE.read_text())
    schema["$defs"]["platformResult"]["properties"]["checks"]["propertyNames"]["enum"] = [*names, SLOWDOWN_CHECK]
    return jsonschema.Draft202012Validator(schema)


def validate(doc: Any, name: str = "the report") -> None:
    """Raise :class:`ReportUnusable` naming where ``doc`` breaks schema 1."""
    if not isinstance(doc, dict) or doc.get("schema") != 1:
        raise ReportUnusable(f"{name}: not a schema-1 multiarch report (write one with --multiarch-json)")
    errors = sorted(_validator().iter_errors(doc), key=lambda e: list(e.absolute_path))
    if errors:
        shown = "; ".join(f"at {_where(e.absolute_path)}: {e.message[:200]}" for e in errors[:3])
        more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
        raise ReportUnusable(f"{name}: does not follow the report schema ({SCHEMA_FILE.name}): {shown}{more}")


def _where(path: Any) -> str:
    return "/" + "/".join(str(p) for p in path) if path else "the top level"


def load_report(path: str | Path) -> dict[str, Any]:
    try:
        doc = json.loads(Path(path).read_text())
    except OSError as exc:
        raise ReportUnusable(f"{path}: cannot read the report ({exc.strerror})") from exc
    except ValueError as exc:
        raise ReportUnusable(f"{path}: not JSON ({exc})") from exc
    validate(doc, str(path))
    return dict(doc)


@dataclass
class Verdict:
    """What the gate found: the reasons to refuse, and what it vouches for when there are none."""

    reasons: list[str] = field(default_factory=list)
    #: (image ref, index digest, platforms that passed) of every image judged green.
    passed: list[tuple[str, str, list[str]]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def go(self) -> bool:
        return not self.reasons and bool(self.passed)


def judge(
    report: Report | dict[str, Any],
    require: Sequence[str] | None = None,
    max_slowdown: float | None = None,
    image: str | None = None,
    baseline: Baseline | None = None,
    attestations: Sequence[str] = (),
) -> Verdict:
    """Judge a schema-valid report: :class:`Verdict` says go only when it proves a green run.

    ``baseline`` is the release before (its platforms, as :func:`read_baseline` found them):
    an image that lacks one of them must not go out. ``attestations`` are kinds (``sbom``,
    ``provenance``) every platform must carry, as the report's provenance check saw them."""
    if not isinstance(report, Report):
        report = read_report(report)
    verdict = Verdict()
    out = verdict.reasons
    out.extend(_run_reasons(report, whole=image is None))
    images = [i for i in report.images.values() if image is None or i.ref == image]
    if not images:
        out.append(f"the report holds no image{f' {image}' if image else ''}")
    out.extend(
        f"{ref}: the image appears twice in the report"
        for ref in report.duplicate_images
        if image is None or ref == image
    )
    named = report.run.settings.get("images")
    if image is None and isinstance(named, list):
        out.extend(
            f"{ref}: the run was to test it, but the report has no result for it"
            for ref in named
            if ref not in report.images
        )
    for img in images:
        before = len(out)
        ref = img.ref
        if img.is_index is False:
            verdict.notes.append(f"{ref} is a single image, not a manifest list: it has one platform to give")
        if img.error:
            out.append(f"{ref}: {img.error}")
        if not img.digest:
            out.append(f"{ref}: the report names no index digest, so there is nothing to vouch for")
        missing = img.missing
        out.extend(f"{ref}: {name} is missing from the index" for name in missing)
        plats = img.platforms
        if img.duplicate_platforms:
            out.append(f"{ref}: a platform appears twice in the report")
        if not plats and not missing:
            out.append(f"{ref}: no platform was tested")
        if img.requested is None and not img.error:
            out.append(f"{ref}: the report does not say which platforms the run was to test")
        for name in img.requested or ():
            if name not in plats and name not in missing:
                out.append(f"{ref}: {name} was to be tested, but the report has no result for it")
        if not img.error:
            out.extend(f"{ref}: {why}" for why in _image_reasons(img, report.run.settings, baseline, attestations))
        wanted = list(require) if require is not None else list(plats)
        for name in wanted:
            if name not in plats:
                if name not in missing:
                    out.append(f"{ref}: required platform {name} was not tested")
                continue
            out.extend(
                f"{ref} {name}: {why}" for why in _platform_reasons(plats[name], report.max_slowdown, max_slowdown)
            )
        if len(out) == before:
            verdict.passed.append((ref, img.digest, [n for n in wanted if n in plats]))
    return verdict


@dataclass(frozen=True)
class Baseline:
    """The release a candidate is compared with: what the gate itself resolved."""

    ref: str
    digest: str
    platforms: tuple[str, ...]


def read_baseline(ref: str, registry: Registry) -> Baseline:
    """Resolve the release before (a registry reference, ``oci:`` layout or ``oci-archive:``)
    to its platforms; a SourceError or RegistryError says why it cannot be read."""
    source = open_source(ref, registry)
    try:
        resolved = source.resolve()
    finally:
        source.close()
    return Baseline(ref, resolved.digest, tuple(str(p) for p, _ in resolved.entries))


def _image_reasons(
    img: ImageResult, settings: Mapping[str, Any], baseline: Baseline | None, attestations: Sequence[str]
) -> list[str]:
    """The index as a whole: its own checks passed, its baseline's platforms are all in it."""
    out: list[str] = []
    named = settings.get("baselines") or {}
    for spec in IMAGE_CHECKS:
        check = img.checks.get(spec)
        asked = spec != BASELINE_CHECK or img.ref in named or "*" in named
        if check is None:
            if asked:
                out.append(f"the {spec} check of the index did not run")
        elif check.outcome == SKIPPED:
            if check.skip != IMAGE_SKIPS.get(spec):
                out.append(f"the {spec} check of the index was skipped ({check.detail})")
        elif check.outcome != PASSED:
            out.append(f"{spec} failed: {check.detail}")
    out.extend(
        f"{name} failed: {c.detail}"
        for name, c in img.checks.items()
        if name not in IMAGE_CHECKS and c.outcome != PASSED
    )
    if baseline is not None:
        if not img.lists_present:
            out.append("the report does not list the index's platforms (present_platforms): it cannot be compared")
        else:
            out.extend(
                f"{p} was in the baseline {baseline.ref} ({baseline.digest[:19]}) and is not in this index"
                for p in baseline.platforms
                if p not in img.present
            )
    if attestations:
        prov = img.checks.get(PROVENANCE_CHECK)
        said = prov.data.get("platforms") if prov is not None else None
        if not isinstance(said, dict):
            out.append("the report does not say which attestations each platform has")
        else:
            for plat in img.present:
                have = (said.get(plat) or {}).get("attestations") or []
                out.extend(f"{plat} has no {kind} attestation" for kind in attestations if kind not in have)
    return out


def read_report(doc: dict[str, Any]) -> Report:
    """The report's JSON (schema-valid) read into the types it was written from, once."""
    try:
        return Report.from_json(doc)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:  # a dict that no schema-1 report is
        raise ReportUnusable(f"the report cannot be read: {exc}") from None


def reasons(
    report: Report | dict[str, Any],
    require: Sequence[str] | None = None,
    max_slowdown: float | None = None,
    image: str | None = None,
) -> list[str]:
    """Why the release must not go out; empty when it may."""
    return judge(report, require, max_slowdown, image).reasons


def _run_reasons(report: Report, whole: bool) -> list[str]:
    """The run as a whole: it must say it ran to its end, and nothing may contradict that.
    Its exit status speaks for every image, so it counts when the whole report is judged."""
    out: list[str] = []
    run = report.run
    if report.claimed_complete is None:
        return ["the report does not say whether the run was complete (an older harness wrote it, or it was edited)"]
    if report.claimed_complete is not True:
        out.append("the run was incomplete: " + ("; ".join(run.incomplete) or "the report says so"))
    elif run.incomplete:
        out.append("the report says it is complete but lists why it is not: " + "; ".join(run.incomplete))
    if report.claimed_complete is True and run.deselected:
        out.append(f"{len(run.deselected)} selected test(s) were deselected (-k, -m, --deselect): run them all")
    failed = int(run.other_tests.get("failed", 0))
    if failed:
        out.append(f"{failed} test(s) beside the platform matrix failed")
    if whole and run.exit_status != 0:
        out.append(f"pytest exited {run.exit_status}, not 0")
    return out


def _platform_reasons(plat: PlatformResult, run_limit: float | None, gate_limit: float | None) -> list[str]:
    out: list[str] = []
    if plat.mode not in ("native", "emulated"):
        out.append(f"not run here ({plat.mode_reason or plat.mode})")
    for spec in builtin_checks():
        check = plat.checks.get(spec.name)
        if check is None:
            out.append(f"the {spec.name} check did not run")
        elif check.outcome == SKIPPED:
            if check.skip not in spec.skip_allowed:
                allowed = ", ".join(spec.skip_allowed) or "no reason"
                out.append(f"{spec.name} was skipped ({check.detail}); it may be skipped only for: {allowed}")
        elif check.outcome != PASSED:
            out.append(f"{spec.name} failed: {check.detail}")
    if run_limit is not None and SLOWDOWN_CHECK not in plat.checks:
        out.append(f"the run asked for --max-slowdown {run_limit:g} but no slowdown check is in the report")
    names = check_names()
    for check in plat.checks.values():  # the checks beyond the built-in ones: --max-slowdown's
        if check.name not in names and check.outcome != PASSED:
            out.append(f"{check.name} failed: {check.detail}")
    tests = [*plat.tests, *plat.duplicate_tests]
    selected = plat.selected_tests
    if selected is None:
        out.append("the report does not say how many tests were selected on this platform")
    elif len(tests) != selected or plat.duplicate_tests:
        out.append(f"{selected} test(s) were selected but {len(tests)} reported")
    failed = [t.nodeid for t in plat.tests.values() if t.outcome != PASSED]
    if failed:
        out.append(f"{len(failed)} test(s) did not pass: {', '.join(failed[:5])}")
    # The figure itself, against the run's limit (its check must agree) and the gate's.
    slowdown = plat.slowdown
    for limit in dict.fromkeys(x for x in (run_limit, gate_limit) if x is not None):
        if slowdown is None:
            out.append(f"slowdown not measured, so --max-slowdown {limit:g} is not met")
        elif slowdown > limit:
            out.append(f"slowdown {slowdown:.1f}x is above --max-slowdown {limit:g}")
    return out


def _refuse_other_platform_digests(src: str, index: Index, tested: Sequence[ImageResult]) -> None:
    """Each tested platform's manifest, as the report names it, must be the index's entry
    for that platform: the report states its digests itself (``gate`` judges the report
    alone), and only here is the index at hand to hold them against."""
    entries: dict[str, set[str]] = {}
    for child in index.platform_entries:
        entries.setdefault(str(child.platform), set()).add(child.digest)
    wrong = [
        f"{image.ref} {name}: the report tested {result.digest}, which is not {src}'s entry for {name}"
        f" ({', '.join(sorted(entries.get(name, ()))) or 'none'})"
        for image in tested
        for name, result in image.platforms.items()
        if result.digest and result.digest not in entries.get(name, ())
    ]
    if wrong:
        raise GateError("the report does not match the index:\n  " + "\n  ".join(wrong))


def promote(
    src: str,
    dest: str,
    report: Report | dict[str, Any],
    registry: Registry,
    require: Sequence[str] | None = None,
    max_slowdown: float | None = None,
    baseline: Baseline | None = None,
    attestations: Sequence[str] = (),
) -> str:
    """Tag the index the report tested as ``dest``; returns its digest. Raises GateError."""
    src_ref, dest_ref = Reference.parse(src), Reference.parse(dest)
    if not same_registry(src_ref.registry, dest_ref.registry):
        raise GateError(f"{dest}: promote tags within one registry ({src_ref.registry}); copy across registries first")
    current = registry.manifest(src_ref)
    if not isinstance(report, Report):
        report = read_report(report)
    tested = [i for i in report.images.values() if i.digest == current.digest]
    if report.duplicate_images:
        twice = ", ".join(dict.fromkeys(report.duplicate_images))
        raise GateError(f"the report holds {twice} twice: it cannot say which result is the one for {src}")
    if not tested:
        seen = ", ".join(f"{i.ref} @ {i.digest or None}" for i in report.images.values()) or "nothing"
        raise GateError(
            f"{src} now points at {current.digest}, which the report did not test (it tested: {seen}): test it again"
        )
    # Every result the report holds for this index must be green: one red run of it is enough
    # to refuse, whatever name it was tested under.
    why = [
        r
        for i in tested
        for r in judge(report, require, max_slowdown, image=i.ref, baseline=baseline, attestations=attestations).reasons
    ]
    if why:
        raise GateError("the report is not green:\n  " + "\n  ".join(dict.fromkeys(why)))
    if isinstance(current, Index):
        _refuse_other_platform_digests(src, current, tested)
    index_bytes = registry.manifest_bytes(src_ref, current.digest)
    if src_ref.repository != dest_ref.repository:
        children = current.manifests if isinstance(current, Index) else ()
        for child in children:
            manifest = registry.manifest(src_ref, child.digest)
            if not isinstance(manifest, ImageManifest):
                raise GateError(f"{src}: entry {child.digest} is an index inside the index; not supported")
            for blob in (manifest.config, *manifest.layers):
                registry.mount_blob(dest_ref, blob.digest, src_ref.repository)
            child_bytes = registry.manifest_bytes(src_ref, child.digest)
            registry.push_manifest(dest_ref, child.digest, child_bytes, manifest.media_type)
        if isinstance(current, ImageManifest):
            for blob in (current.config, *current.layers):
                registry.mount_blob(dest_ref, blob.digest, src_ref.repository)
    registry.push_manifest(dest_ref, dest_ref.tag or "latest", index_bytes, current.media_type)
    return current.digest


def _platforms(text: str | None) -> list[str] | None:
    if not text:
        return None
    parsed = parse_list(text)
    return None if parsed is None else [str(p) for p in parsed]


def _print_go(verdict: Verdict) -> None:
    print("release may go out:")
    for ref, digest, plats in verdict.passed:
        print(f"  {ref} @ {digest} passed on {', '.join(plats)}")
    for note in verdict.notes:
        print(f"  note: {note}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="multiarch",
        description="Release gate for multi-architecture images. Exit codes: 0 go, 1 must not go out, "
        "2 the report is unusable (missing, not JSON, not schema 1, invalid) or the arguments are wrong.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    gate_p = sub.add_parser("gate", help="exit non-zero, with the reasons, when the release must not go out")
    gate_p.add_argument("report")
    gate_p.add_argument(
        "--image",
        metavar="REF",
        help="judge only this image of the report, as the report names it (default: every image)",
    )
    promote_p = sub.add_parser("promote", help="tag the tested index digest as DEST, if the report is green")
    promote_p.add_argument("src")
    promote_p.add_argument("dest")
    promote_p.add_argument("--report", required=True)
    for p in (gate_p, promote_p):
        p.add_argument("--require", metavar="PLATFORMS", help="platforms that must have passed (default: all tested)")
        p.add_argument("--max-slowdown", type=float, metavar="X", help="fail a platform slower than X times native")
        p.add_argument(
            "--baseline",
            metavar="REF",
            help="the release before (a registry reference, oci:PATH or oci-archive:PATH): refuse an index that "
            "lacks one of its platforms",
        )
        p.add_argument(
            "--require-attestations",
            metavar="KINDS",
            help=f"attestation kinds every platform must carry, comma-separated: {', '.join(ATTESTATION_KINDS)}",
        )
    args = parser.parse_args(argv)
    try:
        require = _platforms(args.require)
        if args.max_slowdown is not None and not args.max_slowdown > 0:
            raise PlatformError(f"--max-slowdown {args.max_slowdown:g} is not a positive number")
        try:
            kinds = attestation_kinds([args.require_attestations or ""])
        except ValueError as exc:
            raise PlatformError(f"--require-attestations: {exc}") from None
        report = read_report(load_report(args.report))
        registry = Registry()
        baseline = read_baseline(args.baseline, registry) if args.baseline else None
        if args.command == "gate":
            verdict = judge(report, require, args.max_slowdown, image=args.image, baseline=baseline, attestations=kinds)
            if not verdict.go:
                print("release must not go out:\n  " + "\n  ".join(verdict.reasons + verdict.notes))
                return EXIT_NO_GO
            _print_go(verdict)
            return EXIT_GO
        digest = promote(args.src, args.dest, report, registry, require, args.max_slowdown, baseline, kinds)
        print(f"promoted {args.src} as {args.dest}: {digest}")
        return EXIT_GO
    except ReportUnusable as exc:
        print(f"multiarch {args.command}: {exc}", file=sys.stderr)
        return EXIT_UNUSABLE
    except GateError as exc:
        print(f"multiarch {args.command}: {exc}", file=sys.stderr)
        return EXIT_NO_GO
    except (PlatformError, ImageReferenceError, RegistryError, SourceError) as exc:
        print(f"multiarch {args.command}: {exc}", file=sys.stderr)
        return EXIT_UNUSABLE
