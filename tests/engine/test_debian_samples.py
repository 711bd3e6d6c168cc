"""The harness on the two Debian root filesystem samples, six platforms, one real run.

Real roots hold what hand-made images do not: about 450 ELF files a platform, Debian's
32-bit compat libraries beside the 64-bit ones, ARM libraries of every shape. The clean
image must pass everywhere with no false alarm, its compat code reported as a warning; the
defects image must fail exactly where sample_images/debian.sh put a defect.
"""

from __future__ import annotations

import json

import jsonschema
import pytest
from enginekit import (
    DEBIAN_PLATFORMS,
    TOP,
    blob_bytes,
    by_platform,
    harness_containers,
    image_named,
    project,
    run_plugin,
)

from harness.gate import SCHEMA_FILE
from harness.manifest import OCI_INDEX, ImageManifest, Index
from harness.reference import Reference
from harness.registry import Registry

pytestmark = pytest.mark.engine

SAMPLE_TESTS = TOP / "sample_images" / "tests" / "test_debian.py"
USER_TESTS = [
    "test_bash_runs",
    "test_python_sees_its_platform",
    "test_openssl_runs",
    "test_curl_runs",
    "test_hello_greets",
]
LIBSSL = "/usr/lib/aarch64-linux-gnu/libssl.so.3"
YAML_EXTENSION = "/usr/lib/python3/dist-packages/yaml/_yaml.cpython-311-x86_64-linux-gnu.so"


@pytest.fixture(scope="module")
def where(tmp_path_factory):
    return project(tmp_path_factory, "debian", {"test_debian.py": SAMPLE_TESTS.read_text()})


@pytest.fixture(scope="module")
def run(debian_samples, where, engine):
    # The sample tests name both images with @pytest.mark.image; no --image is needed.
    before = set(harness_containers(engine))
    out = run_plugin(where, "--platforms", ",".join(DEBIAN_PLATFORMS), "-rf", "-v", env={"COLUMNS": "80"})
    assert not set(harness_containers(engine)) - before, "the run left containers behind"
    return out


def outcomes(plat: dict) -> dict[str, str]:
    """Each user test's outcome by its name, without the parameter."""
    return {t["nodeid"].split("::")[-1].split("[")[0]: t["outcome"] for t in plat["tests"]}


def warnings(plat: dict) -> list[str]:
    return plat["checks"]["elf"].get("warnings", [])


def test_the_run_fails_because_of_the_defects_and_follows_the_schema(run):
    result, data = run
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    jsonschema.validate(data, json.loads(SCHEMA_FILE.read_text()))


def test_clean_debian_passes_every_check_and_test_everywhere(run, debian_samples):
    result, data = run
    image = image_named(data, debian_samples["debian"])
    assert image["missing_platforms"] == []
    assert [p["platform"] for p in image["platforms"]] == DEBIAN_PLATFORMS
    for plat in image["platforms"]:
        names = ("config", "elf", "libs", "pages", "uname")
        checks = {name: plat["checks"][name]["outcome"] for name in names}
        assert checks == dict.fromkeys(names, "passed"), plat
        assert outcomes(plat) == dict.fromkeys(USER_TESTS, "passed"), plat
    # No false alarm anywhere: not one failed item names the clean image.
    assert [line for line in result.stdout.lines if line.startswith("FAILED") and "samples/debian:1.0" in line] == []


def test_debian_compat_code_is_a_warning_not_an_error(run, debian_samples):
    _, data = run
    plats = by_platform(image_named(data, debian_samples["debian"]))
    amd64, arm64 = warnings(plats["linux/amd64"]), warnings(plats["linux/arm64"])
    # libc6-i386 on amd64: ELF32 i386 libraries under /usr/lib32.
    assert amd64, plats["linux/amd64"]["checks"]["elf"]
    assert all("/usr/lib32" in w and "32-bit x86" in w for w in amd64), amd64
    # libc6:armhf on arm64: ELF32 ARM under /usr/lib/arm-linux-gnueabihf, which needs AArch32.
    assert arm64, plats["linux/arm64"]["checks"]["elf"]
    assert all("/usr/lib/arm-linux-gnueabihf" in w and "AArch32" in w for w in arm64), arm64
    for name in ("linux/386", "linux/arm/v7", "linux/ppc64le", "linux/s390x"):
        assert warnings(plats[name]) == [], (name, plats[name]["checks"]["elf"])


def test_arm64_defects_are_named_by_the_elf_audit(run, debian_samples):
    _, data = run
    elf = by_platform(image_named(data, debian_samples["debian-defects"]))["linux/arm64"]["checks"]["elf"]
    assert elf["outcome"] == "failed"
    assert elf["detail"].startswith("2 of "), elf["detail"]
    assert f"{LIBSSL} is ELF64 LSB x86-64" in elf["detail"]
    assert f"{YAML_EXTENSION} is ELF64 LSB x86-64" in elf["detail"]


def test_wrong_goarch_hello_is_named_on_arm_v7(run, debian_samples):
    _, data = run
    elf = by_platform(image_named(data, debian_samples["debian-defects"]))["linux/arm/v7"]["checks"]["elf"]
    assert elf["outcome"] == "failed"
    assert elf["detail"].startswith("1 of "), elf["detail"]
    assert "/usr/local/bin/hello is ELF64 LSB AArch64" in elf["detail"] or (
        "/usr/local/bin/hello is a Go binary built with GOARCH=arm64" in elf["detail"]
    ), elf["detail"]


def test_defects_image_passes_where_it_has_no_defect(run, debian_samples):
    _, data = run
    clean = by_platform(image_named(data, debian_samples["debian"]))
    plats = by_platform(image_named(data, debian_samples["debian-defects"]))
    assert list(plats) == DEBIAN_PLATFORMS
    for name in ("linux/amd64", "linux/386", "linux/ppc64le", "linux/s390x"):
        assert plats[name]["checks"]["elf"]["outcome"] == "passed", plats[name]["checks"]["elf"]
        assert outcomes(plats[name]) == dict.fromkeys(USER_TESTS, "passed")
    for name in DEBIAN_PLATFORMS:
        assert plats[name]["checks"]["config"]["outcome"] == plats[name]["checks"]["uname"]["outcome"] == "passed"
        assert plats[name]["checks"]["pages"]["outcome"] == "passed"
        # The same roots: the layer on top adds no warning and takes none away.
        assert warnings(plats[name]) == warnings(clean[name]), name


def test_the_loader_skips_the_amd64_libssl_and_the_libs_check_says_so(run, debian_samples):
    _, data = run
    plats = by_platform(image_named(data, debian_samples["debian-defects"]))
    libs = plats["linux/arm64"]["checks"]["libs"]
    assert libs["outcome"] == "failed"
    assert "/usr/bin/openssl needs libssl.so.3: not in /lib/aarch64-linux-gnu" in libs["detail"], libs["detail"]
    assert "the loader skips /lib/aarch64-linux-gnu/libssl.so.3: ELF64 LSB x86-64" in libs["detail"], libs["detail"]
    for name in ("linux/amd64", "linux/386", "linux/arm/v7", "linux/ppc64le", "linux/s390x"):
        assert plats[name]["checks"]["libs"]["outcome"] == "passed", plats[name]["checks"]["libs"]


def test_amd64_libssl_in_arm64_fails_at_run_time_too(run, debian_samples):
    result, data = run
    arm64 = outcomes(by_platform(image_named(data, debian_samples["debian-defects"]))["linux/arm64"])
    # arm64's loader skips the x86-64 libssl.so.3 and finds no other; the rest still runs.
    assert arm64 == {
        "test_bash_runs": "passed",
        "test_python_sees_its_platform": "passed",
        "test_openssl_runs": "failed",
        "test_curl_runs": "failed",
        "test_hello_greets": "passed",
    }
    result.stdout.fnmatch_lines(
        ["*test_openssl_runs[[]samples/debian-defects:1.0-linux/arm64[]]*", "*libssl.so.3: cannot open shared object*"]
    )


def test_both_images_share_the_root_layers_and_state_their_platforms(debian_samples):
    registry = Registry()
    roots = {}
    for name in ("debian", "debian-defects"):
        ref = Reference.parse(debian_samples[name])
        index = registry.manifest(ref)
        assert isinstance(index, Index)
        assert index.media_type == OCI_INDEX
        assert [str(d.platform) for d in index.platform_entries] == DEBIAN_PLATFORMS
        for entry in index.platform_entries:
            manifest = registry.manifest(ref, entry.digest)
            assert isinstance(manifest, ImageManifest)
            assert {layer.media_type for layer in manifest.layers} == {"application/vnd.oci.image.layer.v1.tar+gzip"}
            config = json.loads(blob_bytes(registry, ref, manifest.config.digest))
            assert config["config"]["Cmd"] == ["bash"]
            assert "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" in config["config"]["Env"]
            roots.setdefault(str(entry.platform), set()).add(manifest.layers[0].digest)
    assert all(len(digests) == 1 for digests in roots.values()), roots
