"""The release gate and promote against the real registry: only the digest that passed goes out."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest
from enginekit import project, run_plugin

from harness.manifest import ImageManifest, Index
from harness.reference import Reference
from harness.registry import Registry

TESTS = "def test_runs(container):\n    assert container.run(['true']).exit_code == 0\n"
PLATFORMS = "linux/amd64,linux/arm64"


def copy_index(src: str, dest: str) -> str:
    """Point ``dest`` at ``src``'s index in the same registry (blobs mounted)."""
    reg = Registry()
    s, d = Reference.parse(src), Reference.parse(dest)
    index = reg.manifest(s)
    assert isinstance(index, Index)
    for child in index.manifests:
        manifest = reg.manifest(s, child.digest)
        assert isinstance(manifest, ImageManifest)
        for blob in (manifest.config, *manifest.layers):
            reg.mount_blob(d, blob.digest, s.repository)
        reg.push_manifest(d, child.digest, reg.manifest_bytes(s, child.digest), manifest.media_type)
    reg.push_manifest(d, d.tag or "latest", reg.manifest_bytes(s, index.digest), index.media_type)
    return index.digest


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True, check=False)


@pytest.fixture
def candidate(samples, registry):
    repo = f"gatetest/app-{uuid.uuid4().hex[:8]}"
    ref = f"{registry}/{repo}:rc"
    return ref, copy_index(samples["good"], ref)


def test_gate_and_promote_the_tested_digest(candidate, samples, registry, tmp_path_factory):
    ref, digest = candidate
    where = project(tmp_path_factory, "gate", {"test_runs.py": TESTS})
    result, _ = run_plugin(where, "--image", ref, "--platforms", PLATFORMS)
    assert result.ret == pytest.ExitCode.OK
    report = str(where / "multiarch.json")
    gate = cli("gate", report, "--require", PLATFORMS)
    assert gate.returncode == 0, gate.stdout + gate.stderr
    dest = ref.replace(":rc", ":release").replace("gatetest/app", "gatetest/promoted")
    promoted = cli("promote", ref, dest, "--report", report)
    assert promoted.returncode == 0, promoted.stderr
    assert Registry().manifest(Reference.parse(dest)).digest == digest


def test_promote_refuses_a_tag_that_moved(candidate, samples, tmp_path_factory):
    ref, _ = candidate
    where = project(tmp_path_factory, "moved", {"test_runs.py": TESTS})
    run_plugin(where, "--image", ref, "--platforms", PLATFORMS)
    copy_index(samples["amd64-tarball"], ref)  # the tag now points elsewhere
    promoted = cli("promote", ref, ref.replace(":rc", ":release"), "--report", str(where / "multiarch.json"))
    assert promoted.returncode == 1
    assert "now points at" in promoted.stderr
    assert "test it again" in promoted.stderr


def test_gate_refuses_a_red_report(samples, tmp_path_factory):
    where = project(tmp_path_factory, "red", {"test_runs.py": TESTS})
    run_plugin(where, "--image", samples["amd64-tarball"], "--platforms", PLATFORMS)
    gate = cli("gate", str(where / "multiarch.json"))
    assert gate.returncode == 1
    assert "linux/arm64: elf failed" in gate.stdout
    promoted = cli(
        "promote",
        samples["amd64-tarball"],
        samples["amd64-tarball"].replace(":1.0", ":release"),
        "--report",
        str(where / "multiarch.json"),
    )
    assert promoted.returncode == 1
    assert "the report is not green" in promoted.stderr


def test_max_slowdown_fails_the_emulated_platform_and_the_gate(candidate, tmp_path_factory):
    ref, _ = candidate
    where = project(tmp_path_factory, "slow", {"test_runs.py": TESTS})
    # Native is 1.0x by definition. `true` and `uname` alone are mostly exec round trip, so
    # emulated they can come out at 1.0x too: the probe's shell loop and hash put real
    # emulated work among the samples, which keeps arm64 well above 1.01x.
    result, data = run_plugin(
        where, "--image", ref, "--platforms", PLATFORMS, "--max-slowdown", "1.01", "--slowdown-probe", "always"
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert data["max_slowdown"] == 1.01
    amd64, arm64 = data["images"][0]["platforms"]
    assert amd64["checks"]["slowdown"]["outcome"] == "passed"
    assert arm64["checks"]["slowdown"]["outcome"] == "failed"
    assert arm64["checks"]["slowdown"]["detail"].endswith("above --max-slowdown 1.01")
    result.stdout.fnmatch_lines(
        ["FAILED gatetest/app-*:rc linux/arm64: slowdown: *x (geometric mean of *), above --max-slowdown 1.01"]
    )
    # Every test passed (libs skipped: the image is static busybox): the slowdown alone
    # fails the run, and the gate.
    result.stdout.fnmatch_lines(["* passed, 2 skipped in *"])
    gate = cli("gate", str(where / "multiarch.json"))
    assert gate.returncode == 1
    assert "linux/arm64: slowdown failed" in gate.stdout


SEVEN = ["linux/amd64", "linux/386", "linux/arm64", "linux/arm/v7", "linux/arm/v6", "linux/ppc64le", "linux/s390x"]


def seven_platform_index(good: str, dest: str) -> str:
    """An index of seven of the good image's platforms as ``dest`` (blobs mounted)."""
    import json

    reg = Registry()
    s, d = Reference.parse(good), Reference.parse(dest)
    index = reg.manifest(s)
    assert isinstance(index, Index)
    doc = json.loads(reg.manifest_bytes(s, index.digest))
    doc["manifests"] = [m for m in doc["manifests"] if _platform_of(m) in SEVEN]
    assert len(doc["manifests"]) == 7
    for entry in doc["manifests"]:
        manifest = reg.manifest(s, entry["digest"])
        assert isinstance(manifest, ImageManifest)
        for blob in (manifest.config, *manifest.layers):
            reg.mount_blob(d, blob.digest, s.repository)
        reg.push_manifest(d, entry["digest"], reg.manifest_bytes(s, entry["digest"]), manifest.media_type)
    return reg.push_manifest(d, d.tag or "latest", json.dumps(doc).encode(), index.media_type)


def _platform_of(entry: dict) -> str:
    p = entry.get("platform", {})
    return "/".join(x for x in (p.get("os"), p.get("architecture"), p.get("variant")) if x)


def test_promote_puts_only_manifests_and_uploads_no_blob(samples, registry, tmp_path_factory):
    from proxy import RecordingProxy

    repo = f"gatetest/seven-{uuid.uuid4().hex[:8]}"
    ref = f"{registry}/{repo}:rc"
    digest = seven_platform_index(samples["good"], ref)
    where = project(tmp_path_factory, "seven", {"test_runs.py": TESTS})
    result, _ = run_plugin(where, "--image", ref, "--platforms", ",".join(SEVEN))
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()[-2000:]
    report = str(where / "multiarch.json")
    with RecordingProxy(registry) as proxy:
        env = {**os.environ, "HTTP_PROXY": f"http://{proxy.address}", "http_proxy": f"http://{proxy.address}"}
        env.pop("NO_PROXY", None)
        env.pop("no_proxy", None)
        # Same repository: the tag is the only thing written.
        same = subprocess.run(
            [sys.executable, "-m", "harness", "promote", ref, ref.replace(":rc", ":release"), "--report", report],
            capture_output=True,
            text=True,
            check=False,
            env=env,
        )
        assert same.returncode == 0, same.stderr
        writes = [x for x in proxy.log if x.method not in ("GET", "HEAD")]
        assert [(x.method, x.path.split("/v2/", 1)[1], x.status) for x in writes] == [
            ("PUT", f"{repo}/manifests/release", 201)
        ]
        assert writes[0].sent == len(Registry().manifest_bytes(Reference.parse(ref), digest))
        proxy.log.clear()
        # Another repository: blobs are mounted (a POST with no body), manifests PUT, no blob bytes.
        other = f"{registry}/gatetest/seven-promoted-{uuid.uuid4().hex[:8]}:release"
        cross = subprocess.run(
            [sys.executable, "-m", "harness", "promote", ref, other, "--report", report],
            capture_output=True,
            text=True,
            check=False,
            env=env,
        )
        assert cross.returncode == 0, cross.stderr
    assert Registry().manifest(Reference.parse(other)).digest == digest
    posts = [x for x in proxy.log if x.method == "POST"]
    assert posts
    assert all("mount=sha256:" in x.path and x.sent == 0 and x.status == 201 for x in posts)
    assert not [x for x in proxy.log if x.method in ("PATCH",) or (x.method == "PUT" and "/blobs/" in x.path)]
    puts = [x.path.rsplit("/", 1)[1] for x in proxy.log if x.method == "PUT"]
    assert len(puts) == 8
    assert puts[-1] == "release"
    assert sum(x.sent for x in proxy.log if x.method != "PUT") == 0
