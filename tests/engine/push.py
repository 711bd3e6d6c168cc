"""Push images made in a test straight to the registry (OCI distribution API), so tests can
make images the harness has never seen, with exactly the defect they need."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from dataclasses import dataclass

import requests

from harness.manifest import DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST

OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Pushed:
    media_type: str
    digest: str
    size: int


class Pusher:
    def __init__(self, registry: str) -> None:
        self.base = f"http://{registry}/v2"
        self.http = requests.Session()

    def blob(self, repo: str, data: bytes) -> str:
        digest = digest_of(data)
        if self.http.head(f"{self.base}/{repo}/blobs/{digest}", timeout=30).status_code == 200:
            return digest
        start = self.http.post(f"{self.base}/{repo}/blobs/uploads/", timeout=30)
        start.raise_for_status()
        location = start.headers["Location"]
        if location.startswith("/"):
            location = self.base.rsplit("/v2", 1)[0] + location
        sep = "&" if "?" in location else "?"
        put = self.http.put(
            f"{location}{sep}digest={digest}",
            data=data,
            timeout=60,
            headers={"Content-Type": "application/octet-stream"},
        )
        put.raise_for_status()
        return digest

    def manifest(self, repo: str, ref: str, doc: dict) -> Pushed:
        data = json.dumps(doc, separators=(",", ":")).encode()
        put = self.http.put(
            f"{self.base}/{repo}/manifests/{ref}", data=data, timeout=30, headers={"Content-Type": doc["mediaType"]}
        )
        put.raise_for_status()
        return Pushed(doc["mediaType"], digest_of(data), len(data))

    def image(
        self,
        repo: str,
        platform: str,
        files: dict[str, bytes | str],
        *,
        config_platform: str | None = None,
        layers: list[dict[str, bytes | str]] | None = None,
        docker_types: bool = False,
    ) -> Pushed:
        """An image whose filesystem holds ``files`` (path -> bytes, or symlink target as str).

        ``config_platform`` makes the config disagree with the index entry on purpose.
        """
        os_, arch, *variant = (config_platform or platform).split("/")
        config: dict = {
            "architecture": arch,
            "os": os_,
            "config": {"Env": ["PATH=/usr/local/bin:/usr/bin:/bin"], "Cmd": ["/bin/sh"]},
            "rootfs": {"type": "layers", "diff_ids": []},
        }
        if variant:
            config["variant"] = variant[0]
        blobs = []
        for content in [files, *(layers or [])]:
            raw = _tar(content)
            config["rootfs"]["diff_ids"].append(digest_of(raw))
            gz = gzip.compress(raw, mtime=0)
            blobs.append(
                {
                    "mediaType": DOCKER_LAYER if docker_types else OCI_LAYER,
                    "digest": self.blob(repo, gz),
                    "size": len(gz),
                }
            )
        cfg = json.dumps(config).encode()
        doc = {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST if docker_types else OCI_MANIFEST,
            "config": {
                "mediaType": DOCKER_CONFIG if docker_types else OCI_CONFIG,
                "digest": self.blob(repo, cfg),
                "size": len(cfg),
            },
            "layers": blobs,
        }
        return self.manifest(repo, digest_of(json.dumps(doc, separators=(",", ":")).encode()), doc)

    def index(
        self, repo: str, tag: str, entries: list[tuple[Pushed, str, dict | None]], *, docker_types: bool = False
    ) -> Pushed:
        manifests = []
        for pushed, platform, notes in entries:
            os_, arch, *variant = platform.split("/")
            plat = {"architecture": arch, "os": os_} | ({"variant": variant[0]} if variant else {})
            entry = {"mediaType": pushed.media_type, "digest": pushed.digest, "size": pushed.size, "platform": plat}
            if notes:
                entry["annotations"] = notes
            manifests.append(entry)
        doc = {"schemaVersion": 2, "mediaType": DOCKER_LIST if docker_types else OCI_INDEX, "manifests": manifests}
        return self.manifest(repo, tag, doc)


def _tar(files: dict[str, bytes | str]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs: set[str] = set()
        for path in sorted(files):
            parts = path.strip("/").split("/")
            for i in range(1, len(parts)):
                d = "/".join(parts[:i])
                if d not in dirs:
                    dirs.add(d)
                    info = tarfile.TarInfo(d)
                    info.type, info.mode = tarfile.DIRTYPE, 0o755
                    tar.addfile(info)
            content = files[path]
            info = tarfile.TarInfo(path.strip("/"))
            if isinstance(content, str):
                info.type, info.linkname = tarfile.SYMTYPE, content
                tar.addfile(info)
            else:
                info.size, info.mode = len(content), 0o755
                tar.addfile(info, io.BytesIO(content))
    return out.getvalue()
