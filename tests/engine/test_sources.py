"""Every kind of source against the real stack: a registry that asks for a login (with
credentials from the Docker config file and from a credential helper), OCI layouts and
archives written by buildah, and an image already in the engine."""

from __future__ import annotations

import base64
import json
import os
import shutil
import uuid

import pytest
from enginekit import buildah_write, by_platform, image_named, project, run_plugin

from harness import Harness
from harness.reference import Reference
from harness.registry import Registry, RegistryError

AUTH_REGISTRY = "127.0.0.1:5001"
USER, PASSWORD = "multiarch", "multiarch-test-password"  # the test account of stack/htpasswd
TESTS = """
def test_runs(container):
    assert container.run(["true"]).exit_code == 0
"""
PLATFORMS = "linux/amd64,linux/arm64,linux/arm/v6"


def write_config(where, **config):
    where.mkdir(parents=True, exist_ok=True)
    (where / "config.json").write_text(json.dumps(config))
    return where


@pytest.fixture(scope="module")
def login_config(tmp_path_factory):
    auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    return write_config(tmp_path_factory.mktemp("docker-config"), auths={AUTH_REGISTRY: {"auth": auth}})


@pytest.fixture(scope="module")
def private_image(samples, login_config, registry):
    """The armv7-in-v6 sample, copied into the login registry under a fresh tag."""
    try:
        anonymous = Registry().manifest(Reference.parse(f"{AUTH_REGISTRY}/x/y:z"))
    except RegistryError as exc:
        if "asks for a login" not in str(exc):
            pytest.fail(f"the login registry at {AUTH_REGISTRY} does not answer as expected: {exc}")
    else:
        pytest.fail(f"the login registry let an anonymous client in: {anonymous}")
    tag = uuid.uuid4().hex[:8]
    os.environ["DOCKER_CONFIG"] = str(login_config)
    try:
        src = Harness(PLATFORMS).source(samples["armv7-in-v6"])
        dest = Reference.parse(f"{AUTH_REGISTRY}/private/app:{tag}")
        reg = Registry()
        index = src.document(src.resolve().digest)
        for desc in index.manifests:
            manifest = src.manifest(desc.digest)
            for blob in (manifest.config, *manifest.layers):
                reg.push_blob(dest, blob.digest, src.blob_path(blob.digest))
            reg.push_manifest(dest, desc.digest, src.document_bytes(desc.digest), manifest.media_type)
        reg.push_manifest(dest, tag, src.document_bytes(index.digest), index.media_type)
    finally:
        del os.environ["DOCKER_CONFIG"]
    return str(dest)


def test_login_required_is_a_clear_failure(private_image, tmp_path_factory):
    where = project(tmp_path_factory, "nologin", {"test_runs.py": TESTS})
    empty = write_config(where / "empty-docker-config")
    result, data = run_plugin(
        where, "--image", private_image, "--platforms", PLATFORMS, env={"DOCKER_CONFIG": str(empty)}
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines([f"*{AUTH_REGISTRY} asks for a login: run `docker login {AUTH_REGISTRY}`*"])
    assert image_named(data, private_image)["error"]


#: Every output a run can write, with debug logging on, to search for the password.
REPORTS = ("--junitxml", "junit.xml", "--multiarch-html", "page.html", "--multiarch-markdown", "summary.md")
LOGS = ("--log-level=DEBUG", "-o", "log_cli=true", "-o", "log_cli_level=DEBUG", "-rA")


def check_private_run(where, private_image, env):
    """Run the plugin on the private image with every report and debug logs on; check the
    verdicts and that the password is nowhere."""
    result, data = run_plugin(where, "--image", private_image, "--platforms", PLATFORMS, *REPORTS, *LOGS, env=env)
    plats = by_platform(image_named(data, private_image))
    assert set(plats) == set(PLATFORMS.split(","))
    assert plats["linux/arm/v6"]["checks"]["elf"]["outcome"] == "failed"
    for name in ("linux/amd64", "linux/arm64"):
        assert {c["outcome"] for n, c in plats[name]["checks"].items() if n != "libs"} == {"passed"}
        assert plats[name]["checks"]["libs"]["outcome"] == "skipped"  # busybox is static
        assert [t["outcome"] for t in plats[name]["tests"]] == ["passed"]  # the engine pulled with the login
    files = [where / name for name in REPORTS[1::2]]
    everything = "\n".join([*result.outlines, *result.errlines, json.dumps(data), *(f.read_text() for f in files)])
    assert "DEBUG" in everything  # the logs are in it
    basic = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    for secret in (PASSWORD, basic):
        assert secret not in everything


def test_login_from_the_docker_config_file(private_image, login_config, tmp_path_factory, no_leftovers):
    where = project(tmp_path_factory, "login", {"test_runs.py": TESTS})
    check_private_run(where, private_image, {"DOCKER_CONFIG": str(login_config)})


def test_login_from_a_credential_helper(private_image, tmp_path_factory, no_leftovers):
    where = project(tmp_path_factory, "helper", {"test_runs.py": TESTS})
    bin_dir = where / "bin"
    bin_dir.mkdir()
    helper = bin_dir / "docker-credential-multiarchtest"
    helper.write_text(
        "#!/bin/sh\n"
        '[ "$1" = get ] || exit 1\n'
        "read -r server\n"
        f'[ "$server" = {AUTH_REGISTRY} ] || {{ echo "credentials not found in native keychain"; exit 1; }}\n'
        f'printf \'{{"ServerURL":"%s","Username":"{USER}","Secret":"{PASSWORD}"}}\' "$server"\n'
    )
    helper.chmod(0o755)
    config = write_config(where / "docker-config", credHelpers={AUTH_REGISTRY: "multiarchtest"})
    check_private_run(where, private_image, {"DOCKER_CONFIG": str(config), "PATH": f"{bin_dir}:{os.environ['PATH']}"})


@pytest.fixture(scope="module")
def buildah_outputs(samples, tmp_path_factory):
    """The armv7-in-v6 sample as buildah writes it: an OCI layout and an OCI archive."""
    out = tmp_path_factory.mktemp("buildah")
    buildah_write(samples["armv7-in-v6"], f"oci:{out / 'layout'}:v1", f"oci-archive:{out / 'image.tar'}:v1")
    return out


@pytest.mark.parametrize("kind", ["oci", "oci-archive"])
def test_buildah_layouts_are_audited_and_run(kind, buildah_outputs, tmp_path_factory, no_leftovers):
    path = buildah_outputs / ("layout" if kind == "oci" else "image.tar")
    image = f"{kind}:{path}:v1"
    where = project(tmp_path_factory, kind, {"test_runs.py": TESTS})
    result, data = run_plugin(where, "--image", image, "--platforms", PLATFORMS)
    plats = by_platform(image_named(data, image))
    assert set(plats) == set(PLATFORMS.split(","))
    assert plats["linux/arm/v6"]["checks"]["elf"]["outcome"] == "failed"
    assert "/bin/busybox needs ARMv7" in plats["linux/arm/v6"]["checks"]["elf"]["detail"]
    for name in ("linux/amd64", "linux/arm64"):
        assert {c["outcome"] for n, c in plats[name]["checks"].items() if n != "libs"} == {"passed"}
        assert plats[name]["checks"]["libs"]["outcome"] == "skipped"  # busybox is static
        assert [t["outcome"] for t in plats[name]["tests"]] == ["passed"]
    # On a faithful ARMv6 CPU the ARMv7 busybox dies: uname and the test fail too.
    assert "Illegal instruction" in plats["linux/arm/v6"]["checks"]["uname"]["detail"]
    result.assert_outcomes(passed=2 + 10 + 2, failed=3, skipped=3)


def test_layout_with_a_corrupted_blob_names_it(buildah_outputs, tmp_path):
    layout = tmp_path / "layout"
    shutil.copytree(buildah_outputs / "layout", layout)
    h = Harness("linux/arm64")
    plan = h.plan(f"oci:{layout}:v1")
    manifest = h.source(plan.image).manifest(plan.targets[0].digest)
    blob = layout / "blobs" / "sha256" / manifest.layers[0].digest.partition(":")[2]
    blob.write_bytes(blob.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(ValueError, match=f"blob {manifest.layers[0].digest} does not match its content"):
        h.check("elf", plan.targets[0])


def test_image_from_the_engine_store(samples, engine, tmp_path_factory, no_leftovers):
    src = Harness("linux/arm64").plan(samples["amd64-tarball"]).targets[0]
    pinned = f"{samples['amd64-tarball'].rsplit(':', 1)[0]}@{src.digest}"
    local = f"multiarch-test/local-tarball:{uuid.uuid4().hex[:8]}"
    engine.images.pull(pinned).tag(local)
    try:
        image = f"docker-daemon:{local}"
        where = project(tmp_path_factory, "daemon", {"test_runs.py": TESTS})
        _result, data = run_plugin(where, "--image", image)
        (plat,) = image_named(data, image)["platforms"]
        assert plat["platform"] == "linux/arm64"
        assert plat["checks"]["elf"]["outcome"] == "failed"
        assert "/usr/local/bin/tool is ELF64 LSB x86-64" in plat["checks"]["elf"]["detail"]
        assert [t["outcome"] for t in plat["tests"]] == ["passed"]
    finally:
        engine.images.remove(local)
