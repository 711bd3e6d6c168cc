"""The release gate: judge a JSON report, and promote exactly the digest that passed.

    python -m harness gate REPORT.json [--require PLATFORMS] [--max-slowdown X]
    python -m harness promote SRC DEST --report REPORT.json [--require ...] [--max-slowdown X]

``gate`` exits 0 when the release may go out and 1 with the reasons when it must not.
``promote`` re-resolves SRC, refuses unless its index digest is the one the report tested
and the report passes the gate, then tags exactly that index as DEST in the registry:
blobs are mounted from SRC's repository, never uploaded again, and only manifests are PUT.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .manifest import ImageManifest, Index
from .platform import PlatformError, parse_list
from .reference import Reference, ReferenceError
from .registry import Registry, RegistryError

SCHEMA_FILE = Path(__file__).parent / "schema" / "report-v1.json"


class GateError(ValueError):
    """A report that cannot be judged (unreadable, another schema)."""


def load_report(path: str | Path) -> dict[str, Any]:
    try:
        doc = json.loads(Path(path).read_text())
    except OSError as exc:
        raise GateError(f"{path}: cannot read the report ({exc.strerror})") from exc
    except ValueError as exc:
        raise GateError(f"{path}: not JSON ({exc})") from exc
    if not isinstance(doc, dict) or doc.get("schema") != 1:
        raise GateError(f"{path}: not a schema-1 multiarch report (write one with --multiarch-json)")
    return doc


def reasons(
    report: dict[str, Any],
    require: Sequence[str] | None = None,
    max_slowdown: float | None = None,
    image: str | None = None,
) -> list[str]:
    """Why the release must not go out; empty when it may."""
    out: list[str] = []
    images = [i for i in report.get("images", []) if image is None or i.get("ref") == image]
    if not images:
        return [f"the report holds no image{f' {image}' if image else ''}"]
    for img in images:
        ref = img.get("ref", "?")
        if img.get("error"):
            out.append(f"{ref}: {img['error']}")
        for missing in img.get("missing_platforms", []):
            out.append(f"{ref}: {missing} is missing from the index")
        plats = {p["platform"]: p for p in img.get("platforms", [])}
        for name in require or []:
            if name not in plats and name not in img.get("missing_platforms", []):
                out.append(f"{ref}: required platform {name} was not tested")
        for name, plat in plats.items():
            required = require is None or name in require
            if not required:
                continue
            if plat.get("mode") == "unavailable":
                out.append(f"{ref} {name}: not run here ({plat.get('mode_reason', 'unavailable')})")
            for check, result in plat.get("checks", {}).items():
                if result.get("outcome") == "failed":
                    out.append(f"{ref} {name}: {check} failed: {result.get('detail', '')}")
            failed = [t["nodeid"] for t in plat.get("tests", []) if t.get("outcome") == "failed"]
            if failed:
                out.append(f"{ref} {name}: {len(failed)} test(s) failed: {', '.join(failed[:5])}")
            slowdown = plat.get("slowdown")
            if max_slowdown is not None and slowdown is not None and slowdown > max_slowdown:
                out.append(f"{ref} {name}: slowdown {slowdown:.1f}x is above --max-slowdown {max_slowdown:g}")
    return out


def promote(
    src: str,
    dest: str,
    report: dict[str, Any],
    registry: Registry,
    require: Sequence[str] | None = None,
    max_slowdown: float | None = None,
) -> str:
    """Tag the index the report tested as ``dest``; returns its digest. Raises GateError."""
    src_ref, dest_ref = Reference.parse(src), Reference.parse(dest)
    if src_ref.registry != dest_ref.registry:
        raise GateError(f"{dest}: promote tags within one registry ({src_ref.registry}); copy across registries first")
    tested = next((i for i in report.get("images", []) if i.get("ref") == src), None)
    if tested is None:
        raise GateError(
            f"the report did not test {src} (it tested: "
            f"{', '.join(i.get('ref', '?') for i in report.get('images', [])) or 'nothing'})"
        )
    why = reasons(report, require, max_slowdown, image=src)
    if why:
        raise GateError("the report is not green:\n  " + "\n  ".join(why))
    current = registry.manifest(src_ref)
    if current.digest != tested.get("digest"):
        raise GateError(
            f"{src} now points at {current.digest}, but the report tested {tested.get('digest')}: test it again"
        )
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="multiarch", description="Release gate for multi-architecture images.")
    sub = parser.add_subparsers(dest="command", required=True)
    gate_p = sub.add_parser("gate", help="exit non-zero, with the reasons, when the release must not go out")
    gate_p.add_argument("report")
    promote_p = sub.add_parser("promote", help="tag the tested index digest as DEST, if the report is green")
    promote_p.add_argument("src")
    promote_p.add_argument("dest")
    promote_p.add_argument("--report", required=True)
    for p in (gate_p, promote_p):
        p.add_argument("--require", metavar="PLATFORMS", help="platforms that must have passed (default: all tested)")
        p.add_argument("--max-slowdown", type=float, metavar="X", help="fail a platform slower than X times native")
    args = parser.parse_args(argv)
    try:
        require = _platforms(args.require)
        report = load_report(args.report)
        if args.command == "gate":
            why = reasons(report, require, args.max_slowdown)
            if why:
                print("release must not go out:\n  " + "\n  ".join(why))
                return 1
            print(f"release may go out: {len(report.get('images', []))} image(s) passed")
            return 0
        digest = promote(args.src, args.dest, report, Registry(), require, args.max_slowdown)
        print(f"promoted {args.src} as {args.dest}: {digest}")
        return 0
    except (GateError, PlatformError, ReferenceError, RegistryError) as exc:
        print(f"multiarch {args.command}: {exc}", file=sys.stderr)
        return 1 if isinstance(exc, GateError) else 2
