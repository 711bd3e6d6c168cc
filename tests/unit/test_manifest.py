from __future__ import annotations

from pathlib import Path

import pytest

from harness.manifest import (
    DOCKER_LIST,
    OCI_INDEX,
    DocumentError,
    ImageConfig,
    ImageManifest,
    Index,
    parse_manifest,
)
from harness.platform import Platform

DATA = Path(__file__).parent.parent / "data"


def load(name: str, content_type: str = "") -> Index | ImageManifest:
    return parse_manifest((DATA / name).read_bytes(), "sha256:" + "0" * 64, content_type, name)


def test_attestations_are_not_platforms():
    index = load("buildx-index-with-attestations.json")
    assert isinstance(index, Index)
    assert index.media_type == OCI_INDEX
    assert len(index.manifests) == 4
    assert [str(d.platform) for d in index.platform_entries] == ["linux/amd64", "linux/arm64"]


def test_docker_list_keeps_windows_entries():
    index = load("docker-list-with-windows.json")
    assert isinstance(index, Index)
    assert index.media_type == DOCKER_LIST
    assert [str(d.platform) for d in index.platform_entries] == ["linux/amd64", "linux/arm/v7", "windows/amd64"]


def test_image_manifest():
    manifest = load("oci-manifest.json")
    assert isinstance(manifest, ImageManifest)
    assert manifest.config.digest.startswith("sha256:8888")
    assert [layer.size for layer in manifest.layers] == [812345]


def test_config_platform_and_path():
    config = ImageConfig.parse((DATA / "config-arm-v6.json").read_bytes(), "config")
    assert config.platform == Platform.parse("linux/arm/v6")
    assert config.path_dirs == ("/usr/local/bin", "/usr/bin", "/bin")


def test_unknown_media_type_is_named():
    with pytest.raises(DocumentError, match=r"unsupported manifest media type.*prettyjws"):
        load("schema1-manifest.json")


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b"", "not JSON"),
        (b"[1, 2]", "expected a JSON object"),
        (b"\xff\xfe", "not JSON"),
        (b'{"mediaType": "application/vnd.oci.image.index.v1+json"}', "without a manifests list"),
        (b'{"mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [{"size": 1}]}', "digest"),
        (b'{"mediaType": "application/vnd.oci.image.manifest.v1+json", "layers": []}', "without config"),
    ],
)
def test_broken_documents_name_the_source(data, says):
    with pytest.raises(DocumentError, match=says) as info:
        parse_manifest(data, "sha256:x", "", "reg/repo:tag")
    assert "reg/repo:tag" in str(info.value)
