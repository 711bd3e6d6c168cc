"""A release against the one before it, and the platforms of one index against each other,
on OCI layouts made here: what each check says, and what the gate refuses."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from elfcraft import elf_for
from layerkit import entry, layer
from test_gate import plat as platform_result
from test_gate import report as green_report

from harness import Harness
from harness.checks import FAILED, PASSED, SKIPPED
from harness.gate import EXIT_GO, EXIT_NO_GO, EXIT_UNUSABLE, main
from harness.registry import Registry
from harness.release import NO_PROVENANCE, Origin, check_provenance, parse_time

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
REV = "org.opencontainers.image.revision"
SOURCE = "org.opencontainers.image.source"
SPDX = "https://spdx.dev/Document"
SLSA = "https://slsa.dev/provenance/v0.2"


class Layout:
    """An OCI layout written by hand: one image per platform, each with its own files,
    labels, annotations and attestations."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        (root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
        self.entries: list[dict] = []

    def put(self, data: bytes) -> dict:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        (self.root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (self.root / "blobs" / "sha256" / digest[7:]).write_bytes(data)
        return {"digest": digest, "size": len(data)}

    def image(
        self,
        platform: str,
        files: dict[str, bytes] | None = None,
        *,
        labels: dict[str, str] | None = None,
        annotations: dict[str, str] | None = None,
        created: str = "",
        attestations: tuple[str, ...] = (),
    ) -> Layout:
        os_, arch, *variant = platform.split("/")
        config: dict = {"os": os_, "architecture": arch, "config": {"Labels": labels or {}}}
        if variant:
            config["variant"] = variant[0]
        if created:
            config["created"] = created
        files = files if files is not None else {"bin/app": elf_for(platform)}
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                **self.put(json.dumps(config).encode()),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    **self.put(layer([entry(p, data) for p, data in files.items()])),
                }
            ],
        }
        if annotations:
            manifest["annotations"] = annotations
        plat = {"os": os_, "architecture": arch} | ({"variant": variant[0]} if variant else {})
        pushed = {"mediaType": OCI_MANIFEST, **self.put(json.dumps(manifest).encode()), "platform": plat}
        self.entries.append(pushed)
        for predicate in attestations:
            statement = self.put(json.dumps({"predicateType": predicate}).encode())
            att = {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **self.put(b"{}")},
                "layers": [
                    {
                        "mediaType": "application/vnd.in-toto+json",
                        **statement,
                        "annotations": {"in-toto.io/predicate-type": predicate},
                    }
                ],
            }
            self.entries.append(
                {
                    "mediaType": OCI_MANIFEST,
                    **self.put(json.dumps(att).encode()),
                    "platform": {"os": "unknown", "architecture": "unknown"},
                    "annotations": {
                        "vnd.docker.reference.type": "attestation-manifest",
                        "vnd.docker.reference.digest": pushed["digest"],
                    },
                }
            )
        return self

    def done(self) -> str:
        index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": self.entries}
        (self.root / "index.json").write_text(json.dumps(index))
        return f"oci:{self.root}"


@pytest.fixture
def harness(tmp_path, monkeypatch):
    monkeypatch.setenv("MULTIARCH_CACHE_DIR", str(tmp_path / "cache"))
    with Harness(registry=Registry()) as h:
        yield h


PLATFORMS = ("linux/amd64", "linux/arm64", "linux/s390x")


def release(root: Path, revisions: dict[str, str], **kw) -> str:
    out = Layout(root)
    for plat, rev in revisions.items():
        out.image(plat, labels={REV: rev, SOURCE: "https://git.example/app"} if rev else {}, **kw)
    return out.done()


def test_platforms_built_from_one_revision_pass(harness, tmp_path):
    ref = release(tmp_path / "a", dict.fromkeys(PLATFORMS, "abc123"), created="2026-12-01T10:00:00Z")
    result, origins = harness.provenance(ref)
    assert result.outcome == PASSED, result.detail
    assert "revision abc123" in result.detail
    assert "source https://git.example/app" in result.detail
    assert "created within 0 seconds" in result.detail
    assert [o.platform for o in origins] == list(PLATFORMS)


def test_one_platform_from_another_revision_fails_naming_it(harness, tmp_path):
    ref = release(tmp_path / "b", {"linux/amd64": "abc123", "linux/arm64": "0ld0ld", "linux/s390x": "abc123"})
    result, origins = harness.provenance(ref)
    assert result.outcome == FAILED
    assert result.detail == "linux/arm64 says revision 0ld0ld; the other 2 platforms say revision abc123"
    assert {o.platform: o.says["revision"] for o in origins}["linux/arm64"] == "0ld0ld"


def test_a_platform_that_says_nothing_and_an_even_split(harness, tmp_path):
    ref = release(tmp_path / "c", {"linux/amd64": "abc123", "linux/arm64": "", "linux/s390x": "abc123"})
    result, _ = harness.provenance(ref)
    assert "linux/arm64 says no revision; the other 2 platforms say revision abc123" in result.detail
    even = [Origin("linux/amd64", "d1", {"version": "1.1"}), Origin("linux/arm64", "d2", {"version": "1.0"})]
    assert check_provenance(even).detail == (
        "the platforms disagree on their version: linux/amd64 says version 1.1; linux/arm64 says version 1.0"
    )


def test_annotation_and_label_of_one_platform_disagree(harness, tmp_path):
    out = Layout(tmp_path / "d")
    out.image("linux/amd64", labels={REV: "abc"}, annotations={REV: "abc"})
    out.image("linux/arm64", labels={REV: "abc"}, annotations={REV: "def"})
    result, _ = harness.provenance(out.done())
    assert result.outcome == FAILED
    assert "linux/arm64 says two revisions: abc and def" in result.detail


def test_created_days_apart_is_a_warning_minutes_apart_is_not(harness, tmp_path):
    near = Layout(tmp_path / "near")
    near.image("linux/amd64", created="2026-12-01T10:00:00.123456789Z")
    near.image("linux/arm64", created="2026-12-01T10:07:00Z")
    result, _ = harness.provenance(near.done())
    assert result.outcome == PASSED
    assert "created within 7 minutes" in result.detail
    assert not result.warnings
    far = Layout(tmp_path / "far")
    far.image("linux/amd64", created="2026-12-01T10:00:00Z")
    far.image("linux/arm64", created="2026-11-01T10:00:00Z")
    result, _ = harness.provenance(far.done())
    assert result.outcome == PASSED
    assert result.warnings == (
        "linux/arm64 was created up to 30 days before the newest platform (2026-12-01 10:00 UTC): not one build; "
        "pushed again from an older one?",
    )


def test_attestations_on_some_platforms(harness, tmp_path):
    ref = (
        Layout(tmp_path / "att")
        .image("linux/amd64", attestations=(SPDX, SLSA))
        .image("linux/arm64", attestations=(SLSA,))
        .image("linux/s390x")
        .done()
    )
    result, origins = harness.provenance(ref)
    assert result.outcome == PASSED
    assert result.warnings == (
        "sbom attestations are attached to linux/amd64 but not to linux/arm64, linux/s390x",
        "provenance attestations are attached to linux/amd64, linux/arm64 but not to linux/s390x",
    )
    assert [o.attestations for o in origins] == [("sbom", "provenance"), ("provenance",), ()]
    required = check_provenance(origins, ("provenance",))
    assert required.outcome == FAILED
    assert required.detail == "no provenance attestation on linux/s390x (--require-attestations provenance)"
    # Attestations are not platforms: the index has three.
    assert [str(p) for p in harness.plan(ref).present] == list(PLATFORMS)


def test_an_index_that_says_nothing_of_its_origin_is_skipped_for_that_reason(harness, tmp_path):
    ref = Layout(tmp_path / "bare").image("linux/amd64").image("linux/arm64").done()
    result, _ = harness.provenance(ref)
    assert result.outcome == SKIPPED
    assert result.skip == NO_PROVENANCE


def test_times_as_images_write_them():
    assert parse_time("2026-12-01T10:00:00.123456789Z") is not None
    assert parse_time("2026-12-01T10:00:00+02:00") is not None
    assert parse_time("yesterday") is None


def test_a_release_compared_with_the_one_before(harness, tmp_path):
    before = Layout(tmp_path / "1.0")
    for plat in PLATFORMS:
        before.image(plat, {"bin/app": elf_for(plat), "bin/old": elf_for(plat)})
    base = before.done()
    after = Layout(tmp_path / "1.1")
    after.image("linux/amd64", {"bin/app": elf_for("linux/amd64"), "bin/new": elf_for("linux/amd64") * 3})
    # s390x now ships an x86-64 binary: an architecture change and a new elf finding.
    after.image("linux/s390x", {"bin/app": elf_for("linux/amd64"), "bin/old": elf_for("linux/s390x")})
    after.image("linux/ppc64le")
    cand = after.done()
    comparison = harness.compare(cand, base)
    assert comparison.dropped == ["linux/arm64"]
    assert comparison.added == ["linux/ppc64le"]
    result = comparison.result()
    assert result.outcome == FAILED
    assert result.detail.startswith(f"linux/arm64 was in the baseline {base} (sha256:")
    assert "is not in this index" in result.detail
    changes = {c.platform: c for c in comparison.changes}
    amd64 = changes["linux/amd64"]
    assert amd64.elf_added == ("/bin/new (ELF64 LSB x86-64 (EM_X86_64))",)
    assert amd64.elf_removed == ("/bin/old (ELF64 LSB x86-64 (EM_X86_64))",)
    assert amd64.uncompressed[1] > amd64.uncompressed[0]
    assert amd64.compressed[0] is not None
    assert not amd64.new_findings
    s390x = changes["linux/s390x"]
    assert s390x.elf_changed == ("/bin/app: was ELF64 MSB IBM S/390 (EM_S390), now ELF64 LSB x86-64 (EM_X86_64)",)
    assert any(f.startswith("elf: /bin/app is ELF64 LSB x86-64") for f in s390x.new_findings)
    assert "1 ELF file of another architecture now" in s390x.summary()
    doc = comparison.to_json()
    assert doc["dropped"] == ["linux/arm64"]
    assert doc["platforms"]["linux/arm64"]["status"] == "dropped"
    assert harness.compare(base, base).result().outcome == PASSED


def _report(present: list[str]) -> dict:
    """A green report of one image whose index has ``present``, of which the first was tested."""
    doc = green_report(platform_result(present[0], "native", tests=(), slowdown=1.0))
    doc["images"][0]["present_platforms"] = present
    return doc


def test_the_gate_compares_with_the_baseline_itself(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MULTIARCH_CACHE_DIR", str(tmp_path / "cache"))
    base = Layout(tmp_path / "base").image("linux/amd64").image("linux/arm64").done()
    path = tmp_path / "r.json"
    path.write_text(json.dumps(_report(["linux/amd64", "linux/arm64"])))
    assert main(["gate", str(path), "--baseline", base]) == EXIT_GO
    path.write_text(json.dumps(_report(["linux/amd64"])))
    capsys.readouterr()
    assert main(["gate", str(path), "--baseline", base]) == EXIT_NO_GO
    assert f"linux/arm64 was in the baseline {base}" in capsys.readouterr().out
    assert main(["gate", str(path)]) == EXIT_GO  # without a baseline, nothing says arm64 was ever there
    assert main(["gate", str(path), "--baseline", f"oci:{tmp_path}/nothing"]) == EXIT_UNUSABLE
    assert "does not exist" in capsys.readouterr().err
    doc = _report(["linux/amd64"])
    del doc["images"][0]["present_platforms"]
    path.write_text(json.dumps(doc))
    assert main(["gate", str(path), "--baseline", base]) == EXIT_NO_GO
    assert "does not list the index's platforms" in capsys.readouterr().out


def test_the_gate_asks_for_the_attestations_it_is_told_to(tmp_path, capsys):
    doc = _report(["linux/amd64"])
    doc["images"][0]["checks"]["provenance"]["platforms"] = {"linux/amd64": {"attestations": ["sbom"]}}
    path = tmp_path / "r.json"
    path.write_text(json.dumps(doc))
    assert main(["gate", str(path), "--require-attestations", "sbom"]) == EXIT_GO
    assert main(["gate", str(path), "--require-attestations", "sbom,provenance"]) == EXIT_NO_GO
    assert "linux/amd64 has no provenance attestation" in capsys.readouterr().out
    assert main(["gate", str(path), "--require-attestations", "sbon"]) == EXIT_UNUSABLE
    assert "sbon is no attestation kind" in capsys.readouterr().err


def test_a_run_given_a_baseline_must_show_its_check(tmp_path, capsys):
    doc = _report(["linux/amd64"])
    doc["run"]["settings"]["baselines"] = {"*": "r/app:1.0"}
    path = tmp_path / "r.json"
    path.write_text(json.dumps(doc))
    assert main(["gate", str(path)]) == EXIT_NO_GO
    assert "the baseline check of the index did not run" in capsys.readouterr().out
    doc["images"][0]["checks"]["baseline"] = {"outcome": "failed", "detail": "linux/arm64 was in ...", "dropped": []}
    path.write_text(json.dumps(doc))
    assert main(["gate", str(path)]) == EXIT_NO_GO
    assert "baseline failed: linux/arm64 was in" in capsys.readouterr().out


def test_a_hand_edited_comparison_is_shown_not_a_crash():
    from harness.report import Report

    doc = _report(["linux/amd64"])
    doc["images"][0]["checks"]["baseline"] = {
        "outcome": "failed",
        "detail": "linux/arm64 was in the baseline r/app:1.0",
        "dropped": ["linux/arm64"],
        "platforms": {
            "linux/amd64": {"elf": {"added": "many"}},
            "linux/386": "gone",
            "linux/arm64": {"status": "dropped"},
        },
    }
    report = Report.from_json(doc)
    text = report.matrix()
    assert "baseline: FAIL: linux/arm64 was in the baseline r/app:1.0" in text
    assert 'linux/amd64: {"elf": {"added": "many"}}' in text
    assert "linux/arm64: dropped: in the baseline, not in this release" in text
    assert [r.mode for r in report.rows() if r.platform == "linux/arm64"] == ["dropped"]
