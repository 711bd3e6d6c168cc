"""The release gate and promote against the real registry: only the digest that passed goes out."""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest

from conftest import project, run_plugin
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
