"""A small OCI distribution client: manifests and blobs, verified and cached by digest."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import queue
import re
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests

from .errors import MultiarchError
from .manifest import ACCEPT, ImageManifest, Index, parse_manifest
from .reference import DOCKER_HUB, Reference
from .streams import ChunkReader

_RETRY_STATUS = {429, 500, 502, 503, 504}


class RegistryError(MultiarchError, RuntimeError):
    """A registry that refused, failed or sent something that does not verify."""


class BlobInterrupted(RegistryError):
    """A blob download that broke off midway (the connection closed, say): worth a retry."""


def default_cache_dir() -> Path:
    base = os.environ.get("MULTIARCH_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "multiarch-harness"
    )
    return Path(base)


def docker_config_path() -> Path:
    """The Docker CLI's config file, where logins are read from."""
    return Path(os.environ.get("DOCKER_CONFIG") or os.path.expanduser("~/.docker")) / "config.json"


def credentials(registry: str) -> tuple[str, str] | None:
    """Username and password for ``registry`` as the Docker CLI would find them.

    The Docker config file (``$DOCKER_CONFIG/config.json``, else ``~/.docker/config.json``):
    a credential helper named for the registry in ``credHelpers``, then an ``auths`` entry,
    then the default helper in ``credsStore``. Helpers speak the docker-credential protocol
    (``docker-credential-NAME get``, the server on stdin, JSON on stdout).
    """
    path = docker_config_path()
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    keys = [registry, f"https://{registry}", f"http://{registry}"]
    if registry in (DOCKER_HUB, "docker.io", "index.docker.io"):  # an engine spells Hub "docker.io"
        keys = ["https://index.docker.io/v1/", "index.docker.io", "docker.io", *keys]
    helpers = config.get("credHelpers") or {}
    for key in keys:
        if key in helpers:
            return _from_helper(helpers[key], key)
    auths = config.get("auths") or {}
    for key in keys:
        entry = auths.get(key) or {}
        if entry.get("auth"):
            user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
            return user, password
        if entry.get("username") and entry.get("password"):
            return str(entry["username"]), str(entry["password"])
    if config.get("credsStore"):
        return _from_helper(config["credsStore"], keys[0])
    return None


def _from_helper(helper: str, server: str) -> tuple[str, str] | None:
    program = f"docker-credential-{helper}"
    try:
        proc = subprocess.run([program, "get"], input=server, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RegistryError(f"credential helper {program} for {server} could not run: {exc}") from exc
    if proc.returncode != 0:
        return None  # "credentials not found": fall back to anonymous access
    try:
        got = json.loads(proc.stdout)
        return str(got["Username"]), str(got["Secret"])
    except (ValueError, KeyError, TypeError) as exc:
        raise RegistryError(f"credential helper {program} gave no Username/Secret for {server}") from exc


def _why(ref: Reference, exc: Exception | None) -> str:
    """What a failed request means, with the likely fix."""
    if isinstance(exc, requests.exceptions.SSLError):
        return f"TLS failed ({exc.__class__.__name__}); a plain-http registry needs --insecure-registry"
    if isinstance(exc, requests.exceptions.ConnectionError) and "timed out" not in str(exc).lower():
        return f"nothing answers at {ref.registry}: is the registry running, and is the address right?"
    if isinstance(exc, requests.exceptions.Timeout):
        return f"{ref.registry} timed out ({exc.__class__.__name__}): is it overloaded, or behind a firewall?"
    return str(exc)


class Registry:
    """Talks to any registry a reference names.

    Plain http is used only for loopback registries (or every registry with
    ``insecure=True``). Blobs land in ``cache_dir/blobs/sha256/`` only after their digest
    verifies, written atomically so parallel workers can share the cache.
    """

    def __init__(
        self,
        cache_dir: Path | None = None,
        *,
        insecure: bool = False,
        timeout: float = 30.0,
        retries: int = 3,
        session: requests.Session | None = None,
    ) -> None:
        self.cache_dir = cache_dir or default_cache_dir()
        self.insecure = insecure
        self.timeout = timeout
        self.retries = retries
        self.http = session or requests.Session()
        self._tokens: dict[tuple[str, str], str] = {}

    # --- plumbing ------------------------------------------------------------------------
    def _base(self, ref: Reference) -> str:
        scheme = "http" if (ref.is_loopback or self.insecure) else "https"
        return f"{scheme}://{ref.registry}/v2/{ref.repository}"

    def _request(self, ref: Reference, method: str, url: str, **kw: Any) -> requests.Response:
        headers = dict(kw.pop("headers", {}))
        last: Exception | None = None
        for attempt in range(self.retries):
            token = self._tokens.get((ref.registry, ref.repository))
            if token:
                headers["Authorization"] = token
            try:
                resp = self.http.request(method, url, headers=headers, timeout=self.timeout, **kw)
            except requests.RequestException as exc:
                last = exc
                time.sleep(0.5 * 2**attempt)
                continue
            if resp.status_code == 401 and not token and self._authenticate(ref, resp):
                continue
            if resp.status_code == 401 and token:
                resp.close()
                user = (credentials(ref.registry) or ("?", ""))[0]
                raise RegistryError(
                    f"{ref.registry} refused the login of {user!r} from {docker_config_path()}: wrong password "
                    f"or expired token? run `docker login {ref.registry}` again"
                )
            if resp.status_code in _RETRY_STATUS and attempt + 1 < self.retries:
                resp.close()
                delay = resp.headers.get("Retry-After", "")
                time.sleep(min(float(delay), 30.0) if delay.isdigit() else 0.5 * 2**attempt)
                continue
            return resp
        raise RegistryError(f"{ref.registry}: {method} {url} failed after {self.retries} tries: {_why(ref, last)}")

    def _authenticate(self, ref: Reference, resp: requests.Response) -> bool:
        challenge = resp.headers.get("WWW-Authenticate", "")
        creds = credentials(ref.registry)
        scheme, _, params = challenge.partition(" ")
        if scheme.lower() == "basic":
            if not creds:
                raise RegistryError(
                    f"{ref.registry} asks for a login: run `docker login {ref.registry}` "
                    "(credentials are read from the Docker config file)"
                )
            raw = base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode()
            self._tokens[(ref.registry, ref.repository)] = f"Basic {raw}"
            return True
        if scheme.lower() != "bearer":
            return False
        fields = dict(re.findall(r'(\w+)="([^"]*)"', params))
        realm = fields.pop("realm", "")
        if not realm:
            return False
        fields.setdefault("scope", f"repository:{ref.repository}:pull")
        auth = creds if creds else None
        got = self.http.get(realm, params=fields, auth=auth, timeout=self.timeout)
        if got.status_code != 200:
            raise RegistryError(
                f"{ref.registry}: token request for {ref.repository} refused ({got.status_code}); "
                f"check `docker login {ref.registry}`"
            )
        body = got.json()
        token = body.get("token") or body.get("access_token")
        if not token:
            return False
        self._tokens[(ref.registry, ref.repository)] = f"Bearer {token}"
        return True

    # --- documents -----------------------------------------------------------------------
    def manifest(self, ref: Reference, digest: str | None = None) -> Index | ImageManifest:
        """The index or image manifest that ``ref`` (or ``digest`` in its repository) names.

        Documents asked for by digest are content-addressed: they are cached on disk and a
        second run fetches nothing. A tag is always asked again: it may have moved.
        """
        target = digest or ref.digest or ref.tag or "latest"
        cached = self._cached_manifest(target)
        if cached is not None:
            return cached
        url = f"{self._base(ref)}/manifests/{target}"
        resp = self._request(ref, "GET", url, headers={"Accept": ACCEPT})
        where = f"{ref.name}@{target}" if target.startswith("sha256:") else f"{ref.name}:{target}"
        if resp.status_code == 404:
            raise RegistryError(f"{where}: not found in {ref.registry} (is the image pushed?)")
        if resp.status_code != 200:
            raise RegistryError(f"{where}: registry answered {resp.status_code}: {resp.text[:200]}")
        data = resp.content
        actual = "sha256:" + hashlib.sha256(data).hexdigest()
        if target.startswith("sha256:") and actual != target:
            raise RegistryError(f"{where}: manifest content hashes to {actual}, not the digest asked for")
        doc = parse_manifest(data, actual, resp.headers.get("Content-Type", ""), where)
        self._store_manifest(actual, data, doc.media_type)
        return doc

    def manifest_bytes(self, ref: Reference, digest: str) -> bytes:
        """The exact bytes of the document with this digest (to copy it without changing it)."""
        self.manifest(ref, digest)
        path = self._manifest_file(digest)
        if path is None or not path.exists():
            raise RegistryError(f"{ref.name}@{digest}: not a sha256 digest")
        return path.read_bytes().partition(b"\n")[2]

    def _manifest_file(self, digest: str) -> Path | None:
        try:
            return self.cache_dir / "manifests" / _sha256_hex(digest, "")
        except RegistryError:
            return None

    def _cached_manifest(self, digest: str) -> Index | ImageManifest | None:
        path = self._manifest_file(digest)
        if path is None or not path.exists():
            return None
        raw = path.read_bytes()
        media_type, _, data = raw.partition(b"\n")
        if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
            return None
        return parse_manifest(data, digest, media_type.decode(), str(path))

    def _store_manifest(self, digest: str, data: bytes, media_type: str) -> None:
        path = self._manifest_file(digest)
        if path is None or path.exists():
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        with _atomic(path) as out:
            out(media_type.encode() + b"\n" + data)

    # --- blobs ---------------------------------------------------------------------------
    def blob_path(self, ref: Reference, digest: str) -> Path:
        """A local file holding the blob, fetched once and verified against its digest."""
        path = self.blob_file(digest, ref.name)
        if path.exists():
            return path
        resp = self._request(ref, "GET", f"{self._base(ref)}/blobs/{digest}", stream=True)
        if resp.status_code != 200:
            raise RegistryError(f"{ref.name}: blob {digest} answered {resp.status_code}")
        return self.store_blob(digest, resp.iter_content(1 << 20), ref.name)

    def blob_file(self, digest: str, where: str = "") -> Path:
        """Where the blob cache keeps (or would keep) this blob."""
        return self.cache_dir / "blobs" / "sha256" / _sha256_hex(digest, where)

    def store_blob(self, digest: str, chunks: Iterable[bytes], where: str) -> Path:
        """Write a blob into the cache, atomically, only if its content has that digest."""
        path = self.blob_file(digest, where)
        path.parent.mkdir(parents=True, exist_ok=True)
        hasher = hashlib.sha256()
        with _atomic(path) as out:
            for chunk in chunks:
                hasher.update(chunk)
                out(chunk)
            if "sha256:" + hasher.hexdigest() != digest:
                raise RegistryError(f"{where}: blob {digest} content hashes to sha256:{hasher.hexdigest()}")
        return path

    @contextmanager
    def open_blob(self, ref: Reference, digest: str) -> Iterator[Any]:
        """A stream of the blob. From the cache when it is there; else fetched while it is
        read: a thread downloads, hashes and writes the cache file, so the network and the
        reader's decompression overlap. The digest is checked when the stream is drained and
        closed; a mismatch raises then, and nothing is cached."""
        path = self.blob_file(digest, ref.name)
        if path.exists():
            with open(path, "rb") as fh:
                yield fh
            return
        resp = self._request(ref, "GET", f"{self._base(ref)}/blobs/{digest}", stream=True)
        if resp.status_code != 200:
            raise RegistryError(f"{ref.name}: blob {digest} answered {resp.status_code}")
        stream = _TeeStream(resp, path, digest, ref.name)
        try:
            yield stream
            stream.finish()
        finally:
            stream.close()

    # --- pushing ---------------------------------------------------------------------------
    def push_blob(self, ref: Reference, digest: str, path: Path) -> None:
        """Upload a blob unless the repository has it (then nothing is sent)."""
        base = self._base(ref)
        head = self._request(ref, "HEAD", f"{base}/blobs/{digest}")
        if head.status_code == 200:
            return
        start = self._request(ref, "POST", f"{base}/blobs/uploads/")
        if start.status_code not in (201, 202):
            raise RegistryError(f"{ref.name}: upload refused ({start.status_code}): {start.text[:200]}")
        location = start.headers.get("Location", "")
        if location.startswith("/"):
            location = base.split("/v2/", 1)[0] + location
        sep = "&" if "?" in location else "?"
        put = self._request(
            ref,
            "PUT",
            f"{location}{sep}digest={digest}",
            data=path.read_bytes(),
            headers={"Content-Type": "application/octet-stream"},
        )
        if put.status_code != 201:
            raise RegistryError(f"{ref.name}: blob {digest} upload answered {put.status_code}: {put.text[:200]}")

    def mount_blob(self, ref: Reference, digest: str, from_repository: str) -> None:
        """Make a blob of another repository of the same registry available in ``ref``'s
        repository without uploading it (a cross-repository mount)."""
        base = self._base(ref)
        if self._request(ref, "HEAD", f"{base}/blobs/{digest}").status_code == 200:
            return
        resp = self._request(ref, "POST", f"{base}/blobs/uploads/?mount={digest}&from={from_repository}")
        if resp.status_code != 201:
            raise RegistryError(
                f"{ref.name}: mounting {digest} from {from_repository} answered {resp.status_code}; "
                "the registry would need the blob uploaded, which promote does not do"
            )

    def push_manifest(self, ref: Reference, target: str, data: bytes, media_type: str) -> str:
        """PUT a manifest or index as these exact bytes under ``target`` (a tag or digest)."""
        put = self._request(
            ref, "PUT", f"{self._base(ref)}/manifests/{target}", data=data, headers={"Content-Type": media_type}
        )
        if put.status_code != 201:
            raise RegistryError(f"{ref.name}: manifest PUT answered {put.status_code}: {put.text[:200]}")
        return "sha256:" + hashlib.sha256(data).hexdigest()


def _sha256_hex(digest: str, where: str) -> str:
    algo, _, hexd = digest.partition(":")
    if algo != "sha256" or not re.fullmatch(r"[0-9a-f]{64}", hexd):
        raise RegistryError(f"{where}: unsupported digest {digest!r} (only sha256 is)")
    return hexd


class _TeeStream:
    """Reads a download through a queue filled by a thread that hashes and caches it."""

    def __init__(self, resp: requests.Response, path: Path, digest: str, where: str) -> None:
        self.resp, self.path, self.digest, self.where = resp, path, digest, where
        self.queue: queue.Queue[bytes | BaseException | None] = queue.Queue(maxsize=16)
        self.done = False
        self.reader = ChunkReader(self._received())
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, self.tmp = tempfile.mkstemp(dir=path.parent, prefix=".partial-")
        self.out = os.fdopen(fd, "wb")
        self.hasher = hashlib.sha256()
        self.thread = threading.Thread(target=self._pump, daemon=True)
        self.thread.start()

    def _pump(self) -> None:
        try:
            for chunk in self.resp.iter_content(1 << 20):
                self.hasher.update(chunk)
                self.out.write(chunk)
                self.queue.put(chunk)
            self.queue.put(None)
        except BaseException as exc:
            self.queue.put(exc)

    def _received(self) -> Iterator[bytes]:
        while True:
            item = self.queue.get()
            if item is None:
                self.done = True
                return
            if isinstance(item, BaseException):
                self.done = True
                raise BlobInterrupted(f"{self.where}: download of {self.digest} broke off: {item}") from item
            yield item

    def read(self, n: int = -1) -> bytes:
        return self.reader.read(n)

    def readinto(self, b: Any) -> int:
        return self.reader.readinto(b)

    def finish(self) -> None:
        """After the last byte was read: keep the file only if the digest matches."""
        self.thread.join()
        self.out.close()
        if "sha256:" + self.hasher.hexdigest() != self.digest:
            raise RegistryError(f"{self.where}: blob {self.digest} content hashes to sha256:{self.hasher.hexdigest()}")
        os.replace(self.tmp, self.path)

    def close(self) -> None:
        self.resp.close()
        if not self.done:
            while self.thread.is_alive():  # unblock the pump so it can end
                with contextlib.suppress(queue.Empty):
                    self.queue.get(timeout=0.1)
        self.thread.join(timeout=5)
        self.out.close()
        if os.path.exists(self.tmp):
            os.unlink(self.tmp)


@contextmanager
def _atomic(path: Path) -> Iterator[Callable[[bytes], int]]:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".partial-")
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh.write
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
