"""Registry logins as the Docker CLI finds them, and the bearer-token handshake against a
small token-issuing registry served here on loopback."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from harness.reference import Reference
from harness.registry import Registry, RegistryError, credentials


@pytest.fixture
def docker_config(tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))

    def write(**config):
        (tmp_path / "config.json").write_text(json.dumps(config))

    return write


def test_auths_entry(docker_config):
    docker_config(auths={"reg.example:5000": {"auth": base64.b64encode(b"me:pw").decode()}})
    assert credentials("reg.example:5000") == ("me", "pw")
    assert credentials("other.example") is None


def test_docker_hub_keys(docker_config):
    docker_config(auths={"https://index.docker.io/v1/": {"auth": base64.b64encode(b"hub:pw").decode()}})
    assert credentials("registry-1.docker.io") == ("hub", "pw")


def test_helper_wins_over_auths(docker_config, tmp_path, monkeypatch):
    helper = tmp_path / "docker-credential-fake"
    helper.write_text('#!/bin/sh\nread s\nprintf \'{"Username":"h","Secret":"s-%s"}\' "$s"\n')
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    docker_config(credHelpers={"reg.example": "fake"}, auths={"reg.example": {"auth": "eDp5"}})
    assert credentials("reg.example") == ("h", "s-reg.example")


def test_helper_without_an_entry_means_anonymous(docker_config, tmp_path, monkeypatch):
    helper = tmp_path / "docker-credential-none"
    helper.write_text("#!/bin/sh\necho 'credentials not found in native keychain'\nexit 1\n")
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    docker_config(credsStore="none")
    assert credentials("reg.example") is None


def test_missing_helper_names_it(docker_config, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    docker_config(credHelpers={"reg.example": "gone"})
    with pytest.raises(RegistryError, match="credential helper docker-credential-gone"):
        credentials("reg.example")


INDEX = json.dumps(
    {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": []}
).encode()


class TokenRegistry(BaseHTTPRequestHandler):
    """/v2/ answers 401 with a Bearer challenge; /token hands a token for a login."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        host = f"127.0.0.1:{self.server.server_address[1]}"
        if self.path.startswith("/token"):
            if self.headers.get("Authorization") != "Basic " + base64.b64encode(b"me:pw").decode():
                self.send_response(401)
                self.end_headers()
                return
            body = json.dumps({"token": "tok-123"}).encode()
            self.send_response(200)
            self.end_headers()
            self.wfile.write(body)
            return
        if self.headers.get("Authorization") != "Bearer tok-123":
            self.send_response(401)
            self.send_header("WWW-Authenticate", f'Bearer realm="http://{host}/token",service="test"')
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/vnd.oci.image.index.v1+json")
        self.end_headers()
        self.wfile.write(INDEX)


@pytest.fixture
def token_registry():
    server = ThreadingHTTPServer(("127.0.0.1", 0), TokenRegistry)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_bearer_token_handshake(token_registry, docker_config, tmp_path):
    docker_config(auths={token_registry: {"auth": base64.b64encode(b"me:pw").decode()}})
    doc = Registry(tmp_path / "cache").manifest(Reference.parse(f"{token_registry}/a/b:1"))
    assert doc.digest == "sha256:" + hashlib.sha256(INDEX).hexdigest()


def test_bearer_refused_says_to_log_in(token_registry, docker_config, tmp_path):
    docker_config(auths={token_registry: {"auth": base64.b64encode(b"me:wrong").decode()}})
    with pytest.raises(RegistryError, match=f"check `docker login {token_registry}`"):
        Registry(tmp_path / "cache").manifest(Reference.parse(f"{token_registry}/a/b:1"))


def test_http_only_for_loopback():
    reg = Registry()
    assert reg._base(Reference.parse("127.0.0.1:5000/a")).startswith("http://")
    assert reg._base(Reference.parse("reg.example/a")).startswith("https://")
    assert Registry(insecure=True)._base(Reference.parse("reg.example/a")).startswith("http://")


def test_docker_hub_as_an_engine_spells_it(docker_config):
    docker_config(auths={"https://index.docker.io/v1/": {"auth": base64.b64encode(b"hub:pw").decode()}})
    assert credentials("docker.io") == ("hub", "pw")
