"""OCI layouts made here by hand: what is read, verified and refused."""

from __future__ import annotations

import hashlib
import json
import tarfile

import pytest
from elfcraft import elf_for
from layerkit import entry, layer

from harness.registry import Registry
from harness.sources import LayoutSource, SourceError, check_source_name, open_source


def put(root, data: bytes) -> tuple[str, int]:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    (root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    (root / "blobs" / "sha256" / digest[7:]).write_bytes(data)
    return digest, len(data)


def make_layout(root, platforms=("linux/amd64", "linux/s390x"), tag="v1"):
    root.mkdir(parents=True, exist_ok=True)
    (root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    entries = []
    for plat in platforms:
        os_, arch = plat.split("/")
        cfg_d, cfg_n = put(root, json.dumps({"os": os_, "architecture": arch}).encode())
        lay_d, lay_n = put(root, layer([entry("bin/app", elf_for(plat))]))
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg_d, "size": cfg_n},
                "layers": [
                    {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": lay_d, "size": lay_n}
                ],
            }
        ).encode()
        m_d, m_n = put(root, manifest)
        entries.append(
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": m_d,
                "size": m_n,
                "platform": {"os": os_, "architecture": arch},
            }
        )
    idx = json.dumps(
        {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": entries}
    ).encode()
    i_d, i_n = put(root, idx)
    (root / "index.json").write_text(
        json.dumps(
            {
                "schemaVersion": 2,
                "manifests": [
                    {
                        "mediaType": "application/vnd.oci.image.index.v1+json",
                        "digest": i_d,
                        "size": i_n,
                        "annotations": {"org.opencontainers.image.ref.name": tag},
                    }
                ],
            }
        )
    )
    return root


@pytest.fixture
def registry(tmp_path):
    return Registry(tmp_path / "cache")


def test_layout_platforms_and_audit(tmp_path, registry):
    src = open_source(f"oci:{make_layout(tmp_path / 'l')}:v1", registry)
    resolved = src.resolve()
    assert resolved.is_index
    assert [str(p) for p, _ in resolved.entries] == ["linux/amd64", "linux/s390x"]
    digest = dict(resolved.entries)
    fs = src.filesystem(next(d for p, d in resolved.entries if str(p) == "linux/s390x"))
    assert fs.lookup("/bin/app").elf.big_endian
    assert digest


def test_archive_is_read_without_extracting(tmp_path, registry):
    layout = make_layout(tmp_path / "l")
    archive = tmp_path / "image.tar"
    with tarfile.open(archive, "w") as tar:
        for path in sorted(layout.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(layout)), recursive=False)
    src = open_source(f"oci-archive:{archive}:v1", registry)
    try:
        assert len(src.resolve().entries) == 2
        assert src.filesystem(src.resolve().entries[0][1]).lookup("/bin/app").elf.machine == 62
    finally:
        src.close()


def test_unknown_tag_lists_the_tags(tmp_path, registry):
    with pytest.raises(SourceError, match="no image tagged 'v2' \\(tags: v1\\)"):
        open_source(f"oci:{make_layout(tmp_path / 'l')}:v2", registry).resolve()


def test_not_a_layout(tmp_path, registry):
    (tmp_path / "d").mkdir()
    with pytest.raises(SourceError, match="is not an OCI image layout"):
        LayoutSource("oci:x", tmp_path / "d", None, registry, "127.0.0.1:5000")


def test_tampered_blob_is_refused(tmp_path, registry):
    layout = make_layout(tmp_path / "l", platforms=("linux/amd64",))
    src = open_source(f"oci:{layout}", registry)
    ((_, digest),) = src.resolve().entries
    layer_digest = src.manifest(digest).layers[0].digest
    (layout / "blobs" / "sha256" / layer_digest[7:]).write_bytes(b"tampered")
    with pytest.raises(SourceError, match=f"blob {layer_digest} does not match its content"):
        src.filesystem(digest)


def test_missing_blob_is_named(tmp_path, registry):
    layout = make_layout(tmp_path / "l", platforms=("linux/amd64",))
    src = open_source(f"oci:{layout}", registry)
    ((_, digest),) = src.resolve().entries
    cfg = src.manifest(digest).config.digest
    (layout / "blobs" / "sha256" / cfg[7:]).unlink()
    with pytest.raises(SourceError, match=f"blob {cfg} is missing from the layout"):
        src.config(digest)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("oci:/no/such/dir", "does not exist"),
        ("oci-archive:/no/such.tar", "does not exist"),
        ("docker-daemon:", "name the image"),
        ("Bad Ref", "not an image reference"),
    ],
)
def test_bad_source_names(text, says):
    with pytest.raises(ValueError, match=says):
        check_source_name(text)
