"""An image that cannot be read, whatever the reason, fails its checks with that reason:
never a traceback, and the report is still written."""

from __future__ import annotations

import gzip
import io
import json
import tarfile

import pytest
from elfcraft import elf_for
from layerkit import entry, layer
from test_strict_elf import amd64_with_lib32

from harness.layers import LayerError, index_layer, open_decompressed


def _archive(tmp_path) -> str:
    layout = tmp_path / "layout"
    amd64_with_lib32(layout)
    archive = tmp_path / "image.tar"
    with tarfile.open(archive, "w") as tar:
        for path in sorted(layout.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(layout)), recursive=False)
    return f"oci-archive:{archive}:v1"


@pytest.mark.parametrize("workers", ["0", "2"])
def test_a_cache_that_cannot_be_written_fails_the_image_not_the_run(pytester, tmp_path, monkeypatch, workers):
    image = _archive(tmp_path)
    (tmp_path / "file").write_text("not a folder")
    monkeypatch.setenv("MULTIARCH_CACHE_DIR", str(tmp_path / "file" / "cache"))  # the archive's blobs go there
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    pytester.makepyfile("def test_x(platform):\n    pass\n")
    report = tmp_path / "r.json"
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-n", workers, "--image", image, "--platforms", "linux/amd64",
        f"--multiarch-json={report}",
    )  # fmt: skip
    assert result.ret == 1, result.stdout.str()
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    (doc,) = json.loads(report.read_text())["images"]
    assert "Not a directory" in doc["error"]


def test_a_corrupt_compressed_layer_is_a_layer_error():
    good = layer([entry("bin/app", elf_for("linux/amd64"))], compress=False)
    packed = bytearray(gzip.compress(good))
    packed[20:40] = bytes(b ^ 0xFF for b in packed[20:40])  # the start of the deflate stream garbled
    with pytest.raises(LayerError, match="sha256:bad: not a readable tar stream"):
        index_layer(open_decompressed(io.BytesIO(bytes(packed)), "sha256:bad"), "sha256:bad")
