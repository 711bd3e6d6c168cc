"""A release compared with the one before, on the real registry: 1.0 with every platform of
the good sample, 1.1 as a pipeline would push it right, without arm64, and with one
platform left over from 1.0's revision. The plugin's checks, the gate and promote must each
say go only for the right one, whatever the baseline's source: registry, layout, archive."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pytest
from enginekit import buildah_write, image_named, project, run_plugin
from push import Pusher, digest_of

from harness.manifest import ImageManifest, Index
from harness.reference import Reference
from harness.registry import Registry

TESTS = "def test_runs(container):\n    assert container.run(['true']).exit_code == 0\n"
REV = "org.opencontainers.image.revision"
SOURCE = "https://git.example/team/app"
SBOM = "https://spdx.dev/Document"
SLSA = "https://slsa.dev/provenance/v0.2"
OLD = "0ddba11" * 5 + "00000"
NEW = "c0ffee0" * 5 + "11111"


@dataclass(frozen=True)
class Release:
    ref: str
    digest: str
    platforms: tuple[str, ...]


class Releaser:
    """Re-releases the good sample's platforms under new labels, as a pipeline pushes a
    release: each platform's config labelled with the revision it was built from, its
    layers mounted (never uploaded), attestations attached where asked."""

    def __init__(self, sample: str, registry: str, repo: str) -> None:
        self.reg = Registry()
        self.src = Reference.parse(sample)
        self.repo = repo
        self.dest = Reference.parse(f"{registry}/{repo}:x")
        self.push = Pusher(registry)
        index = self.reg.manifest(self.src)
        assert isinstance(index, Index)
        self.index_bytes = self.reg.manifest_bytes(self.src, index.digest)
        self.entries = {str(d.platform): d for d in index.platform_entries}
        self.order = {str(d.platform): i for i, d in enumerate(index.manifests)}

    def platform(self, name: str, revision: str, version: str, created: datetime, attest: bool) -> list[dict]:
        entry = self.entries[name]
        entry_platform = json.loads(self.index_bytes)["manifests"][self.order[name]]["platform"]
        manifest = self.reg.manifest(self.src, entry.digest)
        assert isinstance(manifest, ImageManifest)
        config = json.loads(self.reg.blob_path(self.src, manifest.config.digest).read_bytes())
        config["created"] = created.strftime("%Y-%m-%dT%H:%M:%SZ")
        labels = {REV: revision, "org.opencontainers.image.version": version, "org.opencontainers.image.source": SOURCE}
        config.setdefault("config", {})["Labels"] = labels
        for layer in manifest.layers:
            self.reg.mount_blob(self.dest, layer.digest, self.src.repository)
        data = json.dumps(config).encode()
        doc = json.loads(self.reg.manifest_bytes(self.src, entry.digest))
        doc["config"] |= {"digest": self.push.blob(self.repo, data), "size": len(data)}
        raw = json.dumps(doc, separators=(",", ":")).encode()
        self.reg.push_manifest(self.dest, digest_of(raw), raw, doc["mediaType"])
        out = [{"mediaType": doc["mediaType"], "digest": digest_of(raw), "size": len(raw), "platform": entry_platform}]
        if attest:
            out.append(self._attestation(digest_of(raw), (SBOM, SLSA)))
        return out

    def _attestation(self, digest: str, predicates: tuple[str, ...]) -> dict:
        """An attestation manifest as BuildKit attaches one: in-toto statements as layers."""
        layers = []
        for predicate in predicates:
            statement = json.dumps({"_type": "https://in-toto.io/Statement/v0.1", "predicateType": predicate}).encode()
            layers.append(
                {
                    "mediaType": "application/vnd.in-toto+json",
                    "digest": self.push.blob(self.repo, statement),
                    "size": len(statement),
                    "annotations": {"in-toto.io/predicate-type": predicate},
                }
            )
        config = b"{}"
        doc = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": self.push.blob(self.repo, config),
                "size": len(config),
            },
            "layers": layers,
        }
        raw = json.dumps(doc, separators=(",", ":")).encode()
        self.reg.push_manifest(self.dest, digest_of(raw), raw, doc["mediaType"])
        return {
            "mediaType": doc["mediaType"],
            "digest": digest_of(raw),
            "size": len(raw),
            "platform": {"os": "unknown", "architecture": "unknown"},
            "annotations": {"vnd.docker.reference.type": "attestation-manifest", "vnd.docker.reference.digest": digest},
        }

    def release(self, tag: str, built: dict[str, tuple[str, str, datetime]], attest: set[str]) -> Release:
        """``built``: platform -> (revision, version, created) it was built with."""
        manifests = []
        for name in self.entries:
            if name in built:
                manifests.extend(self.platform(name, *built[name], attest=name in attest))
        doc = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests}
        raw = json.dumps(doc, separators=(",", ":")).encode()
        ref = f"{self.dest.registry}/{self.repo}:{tag}"
        self.reg.push_manifest(Reference.parse(ref), tag, raw, doc["mediaType"])
        return Release(ref, digest_of(raw), tuple(built))


@pytest.fixture(scope="module")
def releases(samples, registry) -> dict[str, Release]:
    repo = f"releasetest/app-{uuid.uuid4().hex[:8]}"
    maker = Releaser(samples["good"], registry, repo)
    every = list(maker.entries)
    then = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)
    now = then + timedelta(days=30)
    old = {p: (OLD, "1.0", then + timedelta(minutes=i)) for i, p in enumerate(every)}
    new = {p: (NEW, "1.1", now + timedelta(minutes=i)) for i, p in enumerate(every)}
    return {
        "1.0": maker.release("1.0", old, set(every)),
        "1.1": maker.release("1.1", new, set(every)),
        # The arm64 leg of the pipeline failed and nothing noticed.
        "1.1-lost": maker.release("1.1-lost", {p: v for p, v in new.items() if p != "linux/arm64"}, set(every)),
        # s390x was not rebuilt: 1.0's image was pushed into 1.1's index.
        "1.1-mixed": maker.release("1.1-mixed", new | {"linux/s390x": old["linux/s390x"]}, set(every)),
        # Attestations on every platform but s390x's and mips64le's.
        "1.1-unattested": maker.release("1.1-unattested", new, set(every) - {"linux/mips64le", "linux/s390x"}),
    }


def run(where, ref: str, *args: str) -> tuple[pytest.RunResult, dict]:
    return run_plugin(where, "--image", ref, "--platforms", "linux/amd64", *args)


def gate(report, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "harness", "gate", str(report), *args]
    return subprocess.run(cmd, capture_output=True, text=True, check=False)


def test_the_right_release_goes_out_compared_with_the_last(releases, tmp_path_factory):
    where = project(tmp_path_factory, "rel-good", {"test_app.py": TESTS})
    base, cand = releases["1.0"], releases["1.1"]
    result, data = run(where, cand.ref, "--baseline", base.ref, "--require-attestations", "sbom")
    assert result.ret == 0, "\n".join(result.outlines[-30:])
    image = image_named(data, cand.ref)
    baseline = image["checks"]["baseline"]
    assert baseline["outcome"] == "passed", baseline
    assert baseline["dropped"] == []
    assert baseline["digest"] == base.digest
    assert set(baseline["platforms"]) == set(base.platforms)
    amd64 = baseline["platforms"]["linux/amd64"]
    assert amd64["status"] == "kept"
    # Only the config changed: the same layers, the same files, no new finding.
    assert amd64["uncompressed"]["before"] == amd64["uncompressed"]["after"] > 0
    assert amd64["elf"] == {
        "added": 0,
        "removed": 0,
        "changed_architecture": 0,
        "added_paths": [],
        "removed_paths": [],
        "changed_paths": [],
    }
    assert amd64["new_findings"] == []
    provenance = image["checks"]["provenance"]
    assert provenance["outcome"] == "passed", provenance
    assert f"revision {NEW}" in provenance["detail"]
    assert provenance["platforms"]["linux/arm64"]["attestations"] == ["sbom", "provenance"]
    report = where / "multiarch.json"
    assert gate(report, "--baseline", base.ref).returncode == 0
    dest = cand.ref.rsplit(":", 1)[0] + ":stable"
    promoted = subprocess.run(
        [sys.executable, "-m", "harness", "promote", cand.ref, dest, "--report", str(report), "--baseline", base.ref],
        capture_output=True,
        text=True,
        check=False,
    )
    assert promoted.returncode == 0, promoted.stderr
    assert Registry().manifest(Reference.parse(dest)).digest == cand.digest
    assert "baseline: ok: every platform of the baseline" in result.stdout.str()


def test_a_release_that_lost_a_platform_is_refused(releases, tmp_path_factory):
    where = project(tmp_path_factory, "rel-lost", {"test_app.py": TESTS})
    base, lost = releases["1.0"], releases["1.1-lost"]
    # Under xdist the image checks run in a worker and reach the report as records.
    result, data = run(where, lost.ref, "--baseline", base.ref, "-n", "2")
    assert result.ret == 1
    baseline = image_named(data, lost.ref)["checks"]["baseline"]
    assert baseline["outcome"] == "failed"
    assert baseline["dropped"] == ["linux/arm64"]
    assert baseline["detail"].startswith(f"linux/arm64 was in the baseline {base.ref}")
    assert baseline["platforms"]["linux/arm64"]["status"] == "dropped"
    result.stdout.fnmatch_lines(["baseline: FAIL: linux/arm64 was in the baseline*"])
    result.stdout.fnmatch_lines(["linux/arm64*dropped*FAIL"])
    report = where / "multiarch.json"
    refused = gate(report)
    assert refused.returncode == 1
    assert "baseline failed: linux/arm64 was in the baseline" in refused.stdout
    # Without --baseline in the run, the index is green on the platform it tested: the gate,
    # given the baseline, still sees the platform that went missing.
    where2 = project(tmp_path_factory, "rel-lost-nobase", {"test_app.py": TESTS})
    result, _ = run(where2, lost.ref)
    assert result.ret == 0, "\n".join(result.outlines[-30:])
    assert gate(where2 / "multiarch.json").returncode == 0
    refused = gate(where2 / "multiarch.json", "--baseline", base.ref)
    assert refused.returncode == 1
    assert f"linux/arm64 was in the baseline {base.ref}" in refused.stdout


def test_a_platform_built_from_another_revision_is_refused(releases, tmp_path_factory):
    where = project(tmp_path_factory, "rel-mixed", {"test_app.py": TESTS})
    mixed = releases["1.1-mixed"]
    result, data = run(where, mixed.ref, "--baseline", releases["1.0"].ref)
    assert result.ret == 1
    image = image_named(data, mixed.ref)
    provenance = image["checks"]["provenance"]
    assert provenance["outcome"] == "failed"
    others = len(mixed.platforms) - 1
    assert provenance["detail"].startswith(f"linux/s390x says revision {OLD}; the other {others} platforms say")
    assert "linux/s390x says version 1.0" in provenance["detail"]
    assert provenance["platforms"]["linux/s390x"]["revision"] == OLD
    assert provenance["warnings"][0].startswith("linux/s390x was created up to 30 days before the newest platform")
    assert image["checks"]["baseline"]["outcome"] == "passed"  # nothing was lost
    refused = gate(where / "multiarch.json")
    assert refused.returncode == 1
    assert f"provenance failed: linux/s390x says revision {OLD}" in refused.stdout


def test_attestations_are_reported_per_platform_and_can_be_required(releases, tmp_path_factory):
    ref = releases["1.1-unattested"].ref
    where = project(tmp_path_factory, "rel-att", {"test_app.py": TESTS})
    result, data = run(where, ref)
    assert result.ret == 0, "\n".join(result.outlines[-30:])
    provenance = image_named(data, ref)["checks"]["provenance"]
    assert provenance["platforms"]["linux/s390x"]["attestations"] == []
    assert any("not to linux/s390x, linux/mips64le" in w for w in provenance["warnings"]), provenance
    assert gate(where / "multiarch.json").returncode == 0
    refused = gate(where / "multiarch.json", "--require-attestations", "sbom")
    assert refused.returncode == 1
    assert "linux/s390x has no sbom attestation" in refused.stdout
    result, data = run(where, ref, "--require-attestations", "sbom,provenance")
    assert result.ret == 1
    detail = image_named(data, ref)["checks"]["provenance"]["detail"]
    assert "no sbom attestation on linux/s390x, linux/mips64le (--require-attestations sbom)" in detail


@pytest.mark.parametrize("kind", ["oci", "oci-archive"])
def test_a_baseline_read_from_a_layout_or_an_archive(releases, kind, tmp_path_factory):
    where = project(tmp_path_factory, f"rel-{kind}", {"test_app.py": TESTS})
    path = where / ("base.tar" if kind == "oci-archive" else "base")
    baseline = f"{kind}:{path}:1.0"
    buildah_write(releases["1.0"].ref, baseline)
    lost = releases["1.1-lost"]
    result, data = run(where, lost.ref, "--baseline", baseline)
    assert result.ret == 1
    check = image_named(data, lost.ref)["checks"]["baseline"]
    assert check["dropped"] == ["linux/arm64"], check
    assert check["ref"] == baseline
    refused = gate(where / "multiarch.json", "--baseline", baseline)
    assert refused.returncode == 1
    assert f"linux/arm64 was in the baseline {baseline}" in refused.stdout
