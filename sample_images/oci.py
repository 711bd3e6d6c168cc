"""Push a multi-platform OCI image made of gzip layer files to a registry.

    python3 oci.py push REGISTRY/REPO:TAG [--env K=V ...] [--cmd ARG ...] [--history TEXT ...]
                        [--mount-from REPO ...] PLATFORM=LAYER.tar.gz[,LAYER.tar.gz...] ...

Each PLATFORM (``linux/arm/v7``) gets an image config that states exactly that platform
(os, architecture and variant), the given Env and Cmd, and the layers in order; the index
lists the platforms in the order given. A blob the repository has already is not sent
again; one that a ``--mount-from`` repository has is mounted from it, so images that share
base layers share the blobs. Only the Python standard library is used, so the sample
images build before the project's virtualenv exists.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
#: The image's creation time: fixed, so a rebuild of the same layers is the same image.
CREATED = "2024-01-01T00:00:00Z"
CHUNK = 1 << 20


@dataclass(frozen=True)
class Blob:
    digest: str
    size: int
    path: Path | None = None
    data: bytes | None = None


def blob_of_file(path: Path) -> Blob:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
    return Blob("sha256:" + h.hexdigest(), path.stat().st_size, path=path)


def blob_of_bytes(data: bytes) -> Blob:
    return Blob("sha256:" + hashlib.sha256(data).hexdigest(), len(data), data=data)


def diff_id(path: Path) -> str:
    """The digest of the layer's uncompressed tar, which the image config lists."""
    h = hashlib.sha256()
    with gzip.open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def canonical(doc: Mapping[str, object]) -> bytes:
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()


class Registry:
    def __init__(self, host: str) -> None:
        # Loopback registries speak plain http, as the harness assumes for them.
        self.base = f"http://{host}"

    def _request(
        self, method: str, url: str, body: bytes | Path | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str]]:
        if not url.startswith("http"):
            url = self.base + url
        hdrs = dict(headers or {})
        data: BinaryIO | bytes | None = None
        if isinstance(body, Path):
            hdrs["Content-Length"] = str(body.stat().st_size)
            data = body.open("rb")
        else:
            data = body
        req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
        try:
            with urllib.request.urlopen(req, timeout=300) as resp:
                resp.read()
                return int(resp.status), dict(resp.headers)
        except urllib.error.HTTPError as exc:
            if method == "HEAD" and exc.code == 404:
                return 404, {}
            detail = exc.read().decode(errors="replace")[:300]
            raise SystemExit(f"oci.py: {method} {url}: HTTP {exc.code} {detail}") from None
        finally:
            if data is not None and not isinstance(data, bytes):
                data.close()

    def has_blob(self, repo: str, digest: str) -> bool:
        return self._request("HEAD", f"/v2/{repo}/blobs/{digest}")[0] == 200

    def push_blob(self, repo: str, blob: Blob, mount_from: list[str]) -> str:
        if self.has_blob(repo, blob.digest):
            return "present"
        for source in mount_from:
            if source != repo and self.has_blob(source, blob.digest):
                status, _ = self._request("POST", f"/v2/{repo}/blobs/uploads/?mount={blob.digest}&from={source}")
                if status == 201:
                    return f"mounted from {source}"
        _, headers = self._request("POST", f"/v2/{repo}/blobs/uploads/")
        location = headers["Location"]
        sep = "&" if "?" in location else "?"
        body = blob.path if blob.path is not None else blob.data
        self._request("PUT", f"{location}{sep}digest={blob.digest}", body, {"Content-Type": "application/octet-stream"})
        return "uploaded"

    def push_manifest(self, repo: str, ref: str, media_type: str, data: bytes) -> None:
        self._request("PUT", f"/v2/{repo}/manifests/{ref}", data, {"Content-Type": media_type})


def platform_fields(name: str) -> dict[str, str]:
    parts = name.split("/")
    if len(parts) not in (2, 3):
        raise SystemExit(f"oci.py: platform {name!r} is not OS/ARCH[/VARIANT]")
    out = {"os": parts[0], "architecture": parts[1]}
    if len(parts) == 3:
        out["variant"] = parts[2]
    return out


def push(args: argparse.Namespace) -> None:
    ref: str = args.ref
    host, _, rest = ref.partition("/")
    repo, _, tag = rest.rpartition(":")
    if not repo or not tag:
        raise SystemExit(f"oci.py: {ref!r} is not REGISTRY/REPO:TAG")
    registry = Registry(host)
    entries = []
    for spec in args.platforms:
        name, _, files = spec.partition("=")
        layers = [Path(f) for f in files.split(",") if f]
        if not layers:
            raise SystemExit(f"oci.py: {spec!r} names no layer (PLATFORM=LAYER.tar.gz,...)")
        plat = platform_fields(name)
        blobs = [blob_of_file(p) for p in layers]
        config = {
            **plat,
            "created": CREATED,
            "config": {"Env": args.env, "Cmd": args.cmd},
            "rootfs": {"type": "layers", "diff_ids": [diff_id(p) for p in layers]},
            "history": [{"created": CREATED, "created_by": text} for text in args.history[: len(layers)]],
        }
        config_blob = blob_of_bytes(canonical(config))
        for blob in blobs:
            how = registry.push_blob(repo, blob, args.mount_from)
            print(f"oci.py: {name}: layer {blob.digest[7:19]} ({blob.size / 1e6:.1f} MB) {how}", file=sys.stderr)
        registry.push_blob(repo, config_blob, [])
        manifest = canonical(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": config_blob.digest, "size": config_blob.size},
                "layers": [{"mediaType": OCI_LAYER, "digest": b.digest, "size": b.size} for b in blobs],
            }
        )
        digest = blob_of_bytes(manifest).digest
        registry.push_manifest(repo, digest, OCI_MANIFEST, manifest)
        entries.append({"mediaType": OCI_MANIFEST, "digest": digest, "size": len(manifest), "platform": plat})
    index = canonical({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries})
    registry.push_manifest(repo, tag, OCI_INDEX, index)
    print(f"{ref}@{blob_of_bytes(index).digest}")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="oci.py", description=__doc__.split("\n\n")[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("push", help="push an index of per-platform images made of gzip layer files")
    p.add_argument("ref", help="REGISTRY/REPO:TAG")
    p.add_argument("platforms", nargs="+", metavar="PLATFORM=LAYER.tar.gz[,LAYER.tar.gz...]")
    p.add_argument("--env", action="append", default=[], help="an Env entry of every config, K=V")
    p.add_argument("--cmd", action="append", default=[], help="one argument of the Cmd")
    p.add_argument("--history", action="append", default=[], help="what made each layer, in order")
    p.add_argument("--mount-from", action="append", default=[], help="a repository to mount shared blobs from")
    push(parser.parse_args(argv))


if __name__ == "__main__":
    main(sys.argv[1:])
