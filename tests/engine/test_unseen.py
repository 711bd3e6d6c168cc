"""Images the harness has never seen, carrying the same defect classes in new shapes.

They are pushed here, in the test, from real static binaries taken out of the sample image
(so their containers really run), with layouts, names and media types of their own.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest
from elfcraft import elf_for
from enginekit import by_platform, image_named, project, rootfs, run_plugin
from push import Pusher

TESTS = """
def test_echo(container, platform):
    result = container.run(["echo", str(platform)])
    assert result.exit_code == 0
    assert result.stdout.strip() == str(platform)
"""


@pytest.fixture(scope="module")
def unseen(registry, busybox):
    """Push the new images; returns name -> reference."""
    push = Pusher(registry)
    tag = uuid.uuid4().hex[:8]
    refs = {}

    def index(name, entries, **kw):
        repo = f"unseen/{name}"
        pushed = [(push.image(repo, plat, files, **opts), plat, ann) for plat, files, opts, ann in entries]
        push.index(repo, tag, pushed, **kw)
        refs[name] = f"{registry}/{repo}:{tag}"

    bb = busybox
    # A vendored arm64 binary under /opt, in the ppc64le image only.
    index(
        "wrong-arch-vendored",
        [
            ("linux/amd64", rootfs(bb["linux/amd64"]), {}, None),
            ("linux/ppc64le", rootfs(bb["linux/ppc64le"]) | {"/opt/app/server": bb["linux/arm64"]}, {}, None),
        ],
    )
    # ARMv7 code declared as arm/v5; ARMv5 code as arm/v7 is fine (a minimum, not an exact level).
    index(
        "v7-in-v5",
        [
            ("linux/arm/v5", rootfs(bb["linux/arm/v7"]), {}, None),
            ("linux/arm/v7", rootfs(bb["linux/arm/v5"]), {}, None),
        ],
        docker_types=True,
    )
    # A release that dropped s390x, and carries attestation and Windows entries besides.
    amd = push.image("unseen/dropped-s390x", "linux/amd64", rootfs(bb["linux/amd64"]))
    att = push.image("unseen/dropped-s390x", "unknown/unknown", {"/attestation.json": b"{}"})
    win = push.image("unseen/dropped-s390x", "windows/amd64", {"/Windows/x.txt": b"x"})
    push.index(
        "unseen/dropped-s390x",
        tag,
        [
            (amd, "linux/amd64", None),
            (
                att,
                "unknown/unknown",
                {"vnd.docker.reference.type": "attestation-manifest", "vnd.docker.reference.digest": amd.digest},
            ),
            (win, "windows/amd64", None),
        ],
    )
    refs["dropped-s390x"] = f"{registry}/unseen/dropped-s390x:{tag}"
    # Config variant disagrees with the index entry.
    index(
        "config-variant",
        [
            ("linux/arm/v7", rootfs(bb["linux/arm/v7"]), {"config_platform": "linux/arm/v6"}, None),
        ],
    )
    # A dynamically linked program whose loader the image lacks.
    index(
        "no-loader",
        [
            (
                "linux/s390x",
                rootfs(bb["linux/s390x"]) | {"/usr/bin/app": elf_for("linux/s390x", interp="/lib/ld64.so.1")},
                {},
                None,
            ),
        ],
    )
    # The wrong binary is there in a lower layer but deleted (whiteout) by the top one: fine.
    index(
        "whiteout-fixed",
        [
            (
                "linux/arm64",
                rootfs(bb["linux/arm64"]) | {"/usr/local/bin/tool": bb["linux/amd64"]},
                {"layers": [{"/usr/local/bin/.wh.tool": b""}]},
                None,
            ),
        ],
    )
    # No uname in the image: that check is skipped, not failed.
    index(
        "no-uname",
        [
            ("linux/arm64", rootfs(bb["linux/arm64"], applets=("sh", "echo", "sleep")), {}, None),
        ],
    )
    return refs


@pytest.fixture(scope="module")
def run(unseen, tmp_path_factory):
    where = project(tmp_path_factory, "unseen", {"test_echo.py": TESTS})
    args = [a for ref in unseen.values() for a in ("--image", ref)]
    return run_plugin(where, *args, "-v")


def outcome(data, ref, platform, check):
    return by_platform(image_named(data, ref))[platform]["checks"][check]


def test_wrong_arch_binary_in_a_new_place(run, unseen):
    _, data = run
    ref = unseen["wrong-arch-vendored"]
    assert outcome(data, ref, "linux/amd64", "elf")["outcome"] == "passed"
    got = outcome(data, ref, "linux/ppc64le", "elf")
    assert got["outcome"] == "failed"
    assert "/opt/app/server is ELF64 LSB AArch64 (EM_AARCH64), expected ELF64 LSB PowerPC64" in got["detail"]


def test_arm_level_is_a_minimum_in_both_directions(run, unseen):
    _, data = run
    ref = unseen["v7-in-v5"]
    assert outcome(data, ref, "linux/arm/v5", "elf")["outcome"] == "failed"
    assert "needs ARMv7" in outcome(data, ref, "linux/arm/v5", "elf")["detail"]
    assert outcome(data, ref, "linux/arm/v7", "elf")["outcome"] == "passed"


def test_docker_manifest_lists_are_read(run, unseen):
    _, data = run
    image = image_named(data, unseen["v7-in-v5"])
    assert {p["platform"] for p in image["platforms"]} == {"linux/arm/v7", "linux/arm/v5"}


def test_attestations_are_not_platforms_and_windows_is_unavailable(run, unseen):
    _result, data = run
    image = image_named(data, unseen["dropped-s390x"])
    plats = by_platform(image)
    assert set(plats) == {"linux/amd64", "windows/amd64"}
    win = plats["windows/amd64"]
    assert win["mode"] == "unavailable"
    assert "windows images cannot run on a linux engine" in win["mode_reason"]
    assert win["checks"]["uname"]["outcome"] == "skipped"
    assert [t["outcome"] for t in win["tests"]] == ["skipped"]
    assert [t["outcome"] for t in plats["linux/amd64"]["tests"]] == ["passed"]


def test_dropped_platform_when_required(unseen, tmp_path_factory):
    where = project(tmp_path_factory, "dropped", {"test_echo.py": TESTS})
    result, data = run_plugin(where, "--image", unseen["dropped-s390x"], "--platforms", "linux/amd64,linux/s390x")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    image = image_named(data, unseen["dropped-s390x"])
    assert image["missing_platforms"] == ["linux/s390x"]
    result.stdout.fnmatch_lines(["*missing from the index: linux/s390x (present: linux/amd64, windows/amd64)*"])
    # index fails; config, elf, pages, uname and test_echo pass on amd64; libs is skipped (static busybox),
    # and provenance (the index made here says nothing of where it came from)
    result.assert_outcomes(passed=5, failed=1, skipped=2)


def test_config_variant_disagreement(run, unseen):
    _, data = run
    got = outcome(data, unseen["config-variant"], "linux/arm/v7", "config")
    assert got["outcome"] == "failed"
    assert "config says linux/arm/v6 but the index entry says linux/arm/v7" in got["detail"]


def test_missing_loader(run, unseen):
    _, data = run
    got = outcome(data, unseen["no-loader"], "linux/s390x", "elf")
    assert got["outcome"] == "failed"
    assert "/usr/bin/app is dynamically linked but its loader /lib/ld64.so.1 is not in the image" in got["detail"]


def test_whiteout_removes_the_defect(run, unseen):
    _, data = run
    assert outcome(data, unseen["whiteout-fixed"], "linux/arm64", "elf")["outcome"] == "passed"


def test_no_uname_is_skipped_with_the_reason(run, unseen):
    _, data = run
    got = outcome(data, unseen["no-uname"], "linux/arm64", "uname")
    assert got == {"outcome": "skipped", "detail": "the image has no uname on its PATH", "skip": "no-uname"}


def test_user_tests_ran_on_every_runnable_platform(run, unseen):
    _, data = run
    for name in ("wrong-arch-vendored", "v7-in-v5", "config-variant", "whiteout-fixed", "no-uname"):
        for plat in image_named(data, unseen[name])["platforms"]:
            expected = ["passed"]
            if (name, plat["platform"]) == ("v7-in-v5", "linux/arm/v5"):
                expected = ["failed"]  # ARMv7 code on a faithful ARMv5 CPU (QEMU_CPU=arm926)
            assert [t["outcome"] for t in plat["tests"]] == expected, (name, plat["platform"])


def test_single_manifest_tag_is_reported_as_such(registry, busybox, tmp_path_factory):
    push = Pusher(registry)
    tag = uuid.uuid4().hex[:8]
    pushed = push.image("unseen/single", "linux/amd64", rootfs(busybox["linux/amd64"]))
    push.manifest(
        "unseen/single",
        tag,
        json.loads(
            push.http.get(
                f"{push.base}/unseen/single/manifests/{pushed.digest}",
                headers={"Accept": pushed.media_type},
                timeout=30,
            ).content
        ),
    )
    ref = f"{registry}/unseen/single:{tag}"
    where = project(tmp_path_factory, "single", {"test_echo.py": TESTS})
    result, data = run_plugin(where, "--image", ref, "--platforms", "linux/amd64,linux/arm64")
    image = image_named(data, ref)
    assert image["is_index"] is False
    assert image["missing_platforms"] == ["linux/arm64"]
    assert "this tag is not a manifest list: it is a single linux/amd64 image" in image["notes"]
    result.stdout.fnmatch_lines(["*missing from the index: linux/arm64*not a manifest list*"])


def test_an_index_with_no_runnable_entry(registry, tmp_path_factory):
    """Only an attestation: nothing to test, which fails, naming what the index holds."""
    push = Pusher(registry)
    repo = f"unseen/attestations-only-{uuid.uuid4().hex[:8]}"
    att = push.image(repo, "unknown/unknown", {"/attestation.json": b"{}"})
    notes = {"vnd.docker.reference.type": "attestation-manifest", "vnd.docker.reference.digest": att.digest}
    push.index(repo, "1.0", [(att, "unknown/unknown", notes)])
    where = project(tmp_path_factory, "noentry", {"test_echo.py": TESTS})
    result, data = run_plugin(where, "--image", f"{registry}/{repo}:1.0")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*:1.0: no runnable platform in the index (entries: none)"])
    (image,) = data["images"]
    assert image["platforms"] == []
    assert image["error"].startswith("no runnable platform in the index")
    # The matrix says so, and the gate refuses it.
    result.stdout.fnmatch_lines(["-  *error  *FAIL", "  - no runnable platform in the index (entries: none)"])
    gate = subprocess.run(
        [sys.executable, "-m", "harness", "gate", str(where / "multiarch.json")], capture_output=True, text=True
    )
    assert gate.returncode == 1
    assert "no runnable platform in the index" in gate.stdout
