"""Registry faults, injected by a proxy in front of the real registry: retries where a retry
is right, a clear failure naming the registry where not, never a wrong verdict."""

from __future__ import annotations

import time

import pytest
from enginekit import project, run_plugin
from proxy import Fault, RecordingProxy

from harness import Harness
from harness.checks import PASSED
from harness.platform import Platform
from harness.registry import Registry, RegistryError

ARM64 = Platform.parse("linux/arm64")


def audit(proxy: RecordingProxy, tmp_path, **registry_kw) -> dict:
    """The arm64 ELF audit of the good sample, through the proxy, with an empty cache (so
    every document and blob crosses the proxy)."""
    registry = Registry(cache_dir=tmp_path / "cache", **registry_kw)
    with Harness("linux/arm64", registry=registry) as harness:
        return harness.audit(f"{proxy.address}/samples/good:1.0")


@pytest.mark.parametrize("kind", ["500", "429"])
def test_transient_errors_are_retried(kind, registry, tmp_path):
    with RecordingProxy(registry, [Fault("/manifests/", kind, times=2, seconds=1)]) as proxy:
        start = time.monotonic()
        verdicts = audit(proxy, tmp_path)
        took = time.monotonic() - start
    assert verdicts[ARM64].outcome == PASSED
    assert [k for k, _ in proxy.injected] == [kind, kind]
    if kind == "429":
        assert took >= 2.0  # Retry-After: 1, honoured twice


def test_a_registry_that_keeps_failing_is_named(registry, tmp_path):
    with (
        RecordingProxy(registry, [Fault("/manifests/", "500", times=-1)]) as proxy,
        pytest.raises(RegistryError) as err,
    ):
        audit(proxy, tmp_path)
    assert proxy.address in str(err.value)
    assert "500" in str(err.value)
    assert len(proxy.injected) == 3  # three tries, then the error


def test_a_hanging_registry_times_out(registry, tmp_path):
    with RecordingProxy(registry, [Fault("/manifests/", "hang", times=-1, seconds=4)]) as proxy:
        start = time.monotonic()
        with pytest.raises(RegistryError) as err:
            audit(proxy, tmp_path, timeout=1.0, retries=2)
        took = time.monotonic() - start
    assert "failed after 2 tries" in str(err.value)
    assert "timed out" in str(err.value).lower()
    assert took < 10


def test_a_blob_cut_off_midway_is_fetched_again(registry, tmp_path):
    with RecordingProxy(registry, [Fault("/blobs/sha256:", "cut", times=1)]) as proxy:
        verdicts = audit(proxy, tmp_path)
    assert verdicts[ARM64].outcome == PASSED
    assert [k for k, _ in proxy.injected] == ["cut"]
    cut = proxy.injected[0][1]
    assert sum(1 for x in proxy.log if x.path == cut) == 2  # cut once, then whole


def test_a_failing_registry_fails_the_run_with_the_reason(registry, tmp_path_factory):
    with RecordingProxy(registry, [Fault("/manifests/", "500", times=-1)]) as proxy:
        where = project(tmp_path_factory, "faulty", {"test_x.py": "def test_x(container):\n    pass\n"})
        result, data = run_plugin(
            where, "--image", f"{proxy.address}/samples/good:1.0", "--platforms", "linux/amd64,linux/arm64"
        )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    (image,) = data["images"]
    assert "answered 500" in image["error"]
    assert image["platforms"] == []
    result.stdout.fnmatch_lines(["FAILED multiarch:*/samples/good:1.0::index - *"])
