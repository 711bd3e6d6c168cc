"""A newer engine with the containerd image store: Debian trixie's docker.io 26 on trixie's
containerd (stack/trixie-engine), beside bookworm's engine, on its own socket and data root.

That store keeps every platform of an index under one name, gives images their manifest
digest as id, and `docker save` writes an OCI layout of the whole index. Docker Engine 29
and Docker Desktop since 4.34 use it by default.
"""

from __future__ import annotations

import uuid

import docker
import pytest
from enginekit import SAMPLE_TESTS, by_platform, image_named, project, rootfs, run_plugin, sample_run_args
from push import Pusher

from harness.engine import Engine
from harness.labels import LABEL

pytestmark = pytest.mark.engine

TRIXIE = "unix:///run/multiarch-trixie/docker.sock"
BOOKWORM = "unix:///var/run/docker.sock"


@pytest.fixture(scope="module")
def trixie(trixie_engine) -> docker.DockerClient:
    return docker.DockerClient(base_url=TRIXIE)


def test_the_store_is_detected_and_the_modes_agree_with_bookworms(trixie, engine):
    found, bookworm = Engine(TRIXIE).survey(), Engine(BOOKWORM).survey()
    assert not found.error
    assert found.version.startswith("26.")
    assert found.store == "containerd (overlayfs)"
    assert found.containerd_store
    assert (bookworm.store, bookworm.containerd_store) == ("overlay2", False)
    assert found.this_kernel
    modes = {f: (r.kind, r.emulator, r.interpreter) for f, r in found.runs.items()}
    assert modes == {f: (r.kind, r.emulator, r.interpreter) for f, r in bookworm.runs.items()}


@pytest.fixture(scope="module")
def trixie_run(trixie, samples, tmp_path_factory):
    where = project(tmp_path_factory, "trixie-samples", {"test_busybox.py": SAMPLE_TESTS.read_text()})
    return run_plugin(where, *sample_run_args(samples, where), env={"COLUMNS": "80", "DOCKER_HOST": TRIXIE})


def verdicts(data: dict) -> dict:
    """Everything a verdict is made of, per image and platform: what the gate reads."""
    out = {}
    for image in data["images"]:
        out[image["ref"]] = {
            "error": image.get("error"),
            "missing": image["missing_platforms"],
            "digest": image["digest"],
            "platforms": {
                p["platform"]: {
                    "digest": p["digest"],
                    "mode": p["mode"],
                    "checks": {name: c["outcome"] for name, c in p["checks"].items() if name != "probe"},
                    "tests": sorted((t["nodeid"], t["outcome"]) for t in p["tests"]),
                }
                for p in image["platforms"]
            },
        }
    return out


def test_the_whole_sample_run_gives_bookworms_verdicts(trixie_run, sample_run):
    (result, data), (bookworm_result, bookworm) = trixie_run, sample_run
    assert result.ret == bookworm_result.ret == pytest.ExitCode.TESTS_FAILED  # the planted defects
    assert data["complete"] is True
    assert verdicts(data) == verdicts(bookworm)
    assert data["engines"][0]["store"] == "containerd (overlayfs)"
    assert f"at {TRIXIE}: linux/amd64" in "\n".join(result.outlines)


def test_every_platform_is_there_by_digest_at_once_and_no_container_is_left(trixie_run, trixie, samples):
    _, data = trixie_run
    repo = samples["good"].rsplit(":", 1)[0]
    for plat in image_named(data, samples["good"])["platforms"]:
        trixie.images.get(f"{repo}@{plat['digest']}")  # each pulled by its own digest, all present
    assert trixie.api.containers(all=True, filters={"label": LABEL}) == []


USER_TESTS = """
def test_echo(container, platform):
    result = container.run(["echo", str(platform)])
    assert result.exit_code == 0
    assert result.stdout.strip() == str(platform)
"""


def test_a_name_in_the_store_holds_every_platform_pulled(trixie, registry, busybox, tmp_path_factory):
    """docker-daemon:NAME on this store: each platform pulled under the name is tested; one
    of the index not pulled there is named; nothing the store had is removed."""
    push = Pusher(registry)
    repo, tag = "store/several", uuid.uuid4().hex[:8]
    mark = {"/etc/build-id": f"{tag}\n".encode()}  # content of its own: no other run pulled it
    pushed = [
        (push.image(repo, plat, rootfs(busybox[plat]) | mark), plat, None)
        for plat in ("linux/amd64", "linux/arm64", "linux/s390x")
    ]
    index = push.index(repo, tag, pushed)
    ref = f"{registry}/{repo}:{tag}"
    for plat in ("linux/amd64", "linux/arm64"):
        trixie.images.pull(f"{registry}/{repo}", tag=tag, platform=plat)
    before = sorted(i.id for i in trixie.images.list())
    where = project(tmp_path_factory, "store-several", {"test_echo.py": USER_TESTS})
    result, data = run_plugin(
        where,
        "--image",
        f"docker-daemon:{ref}",
        "--platforms",
        "linux/amd64,linux/arm64,linux/s390x",
        env={"DOCKER_HOST": TRIXIE},
    )
    image = image_named(data, f"docker-daemon:{ref}")
    assert image["digest"] == index.digest  # the index, as pushed
    plats = by_platform(image)
    for plat in ("linux/amd64", "linux/arm64"):
        assert {c["outcome"] for c in plats[plat]["checks"].values()} <= {"passed", "skipped"}, plats[plat]
        assert [t["outcome"] for t in plats[plat]["tests"]] == ["passed"]
    assert plats["linux/amd64"]["mode"] == "native"
    assert plats["linux/arm64"]["mode"] == "emulated"
    assert image["missing_platforms"] == ["linux/s390x"]
    assert any("not pulled there: linux/s390x" in note for note in image["notes"])
    assert result.ret == pytest.ExitCode.TESTS_FAILED  # a platform asked for is not there
    assert sorted(i.id for i in trixie.images.list() if i.id in before) == before
