"""--max-layer-bytes reaches the audit: the plugin reads it, the library is handed it."""

from __future__ import annotations

import json

import pytest
from test_strict_elf import amd64_with_lib32

from harness import Harness
from harness.layers import LayerTooLarge
from harness.registry import Registry


def test_the_library_reads_layers_up_to_the_limit_it_is_given(tmp_path, monkeypatch):
    image = amd64_with_lib32(tmp_path / "layout")
    monkeypatch.setenv("MULTIARCH_MAX_LAYER_BYTES", "1024")  # the library reads no environment
    with Harness(registry=Registry(tmp_path / "cache-1")) as h:
        assert h.audit(image)
    limited = Harness(registry=Registry(tmp_path / "cache-2"), max_layer_bytes=1024)
    with limited as h, pytest.raises(LayerTooLarge, match="more than 1,024 bytes"):
        h.audit(image)


@pytest.mark.parametrize("how", ["flag", "env"])
def test_the_plugin_hands_the_limit_down(pytester: pytest.Pytester, tmp_path, monkeypatch, how):
    image = amd64_with_lib32(tmp_path / "layout")
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")  # static checks only
    monkeypatch.setenv("MULTIARCH_CACHE_DIR", str(tmp_path / "cache"))  # the layer is read, not found indexed
    args = ["-p", "no:cacheprovider", "--image", image, f"--multiarch-json={tmp_path / 'r.json'}"]
    if how == "flag":
        args.append("--max-layer-bytes=1024")
    else:
        monkeypatch.setenv("MULTIARCH_MAX_LAYER_BYTES", "1024")
    result = pytester.runpytest_subprocess(*args)
    assert result.ret == 1
    (plat,) = json.loads((tmp_path / "r.json").read_text())["images"][0]["platforms"]
    elf = plat["checks"]["elf"]
    assert elf["outcome"] == "failed"
    assert "decompresses to more than 1,024 bytes" in elf["detail"], elf
    assert "MULTIARCH_MAX_LAYER_BYTES" in elf["detail"]


@pytest.mark.parametrize("given", ["0", "-1"])
def test_a_limit_that_is_no_size_is_a_usage_error(pytester: pytest.Pytester, given):
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", f"--max-layer-bytes={given}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*--max-layer-bytes (command line): {given} is not a positive number of bytes*"])
