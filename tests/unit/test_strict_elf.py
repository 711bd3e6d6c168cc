"""--strict-elf: where it is read from, and what it does to an audit."""

from __future__ import annotations

import hashlib
import json

import pytest
from elfcraft import elf_for, make_elf
from layerkit import entry, layer

from harness import Harness
from harness.checks import FAILED, PASSED
from harness.platform import Platform
from plugins.options import resolve


def put(root, data: bytes) -> dict[str, object]:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    (root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    (root / "blobs" / "sha256" / digest[7:]).write_bytes(data)
    return {"digest": digest, "size": len(data)}


def amd64_with_lib32(root):
    """An OCI layout of one linux/amd64 image carrying Debian's libc6-i386 shape."""
    root.mkdir()
    (root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    files = layer(
        [
            entry("usr/bin/app", elf_for("linux/amd64")),
            entry("usr/lib32/libc.so.6", make_elf(elf_class=32, machine=3, etype=3)),
        ]
    )
    config = put(root, json.dumps({"os": "linux", "architecture": "amd64"}).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **put(root, files)}],
    }
    m = put(root, json.dumps(manifest).encode())
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                **m,
                "platform": {"os": "linux", "architecture": "amd64"},
                "annotations": {"org.opencontainers.image.ref.name": "v1"},
            }
        ],
    }
    (root / "index.json").write_text(json.dumps(index))
    return f"oci:{root}:v1"


def test_the_audit_passes_with_warnings_and_fails_under_strict(tmp_path):
    image = amd64_with_lib32(tmp_path / "layout")
    amd64 = Platform.parse("linux/amd64")
    with Harness("linux/amd64") as h:
        got = h.audit(image)[amd64]
    assert got.outcome == PASSED, got.detail
    assert got.warnings == (
        "/usr/lib32/libc.so.6 is ELF32 LSB Intel 80386: 32-bit x86 compat code, which every x86-64 CPU runs",
    )
    with Harness("linux/amd64", strict_elf=True) as h:
        got = h.audit(image)[amd64]
    assert got.outcome == FAILED
    assert "/usr/lib32/libc.so.6 is ELF32 LSB Intel 80386: 32-bit x86 compat code" in got.detail
    assert got.detail.endswith("(warnings fail the check under --strict-elf)")


def test_strict_elf_from_the_command_line_ini_and_environment(pytester: pytest.Pytester, monkeypatch):
    monkeypatch.delenv("MULTIARCH_STRICT_ELF", raising=False)
    assert resolve(pytester.parseconfig()).strict_elf is False
    assert resolve(pytester.parseconfig("--strict-elf")).strict_elf is True
    monkeypatch.setenv("MULTIARCH_STRICT_ELF", "yes")
    assert resolve(pytester.parseconfig()).strict_elf is True
    monkeypatch.setenv("MULTIARCH_STRICT_ELF", "0")
    assert resolve(pytester.parseconfig()).strict_elf is False
    pytester.makeini("[pytest]\nmultiarch_strict_elf = true\n")
    assert resolve(pytester.parseconfig()).strict_elf is True
    # The ini file comes before the environment, also when it says no.
    pytester.makeini("[pytest]\nmultiarch_strict_elf = false\n")
    monkeypatch.setenv("MULTIARCH_STRICT_ELF", "1")
    assert resolve(pytester.parseconfig()).strict_elf is False


def test_a_bad_environment_value_is_a_usage_error(pytester: pytest.Pytester, monkeypatch):
    monkeypatch.setenv("MULTIARCH_STRICT_ELF", "maybe")
    with pytest.raises(pytest.UsageError, match=r"--strict-elf \(env MULTIARCH_STRICT_ELF\): 'maybe' is not one of"):
        resolve(pytester.parseconfig())
