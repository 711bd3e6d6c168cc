from __future__ import annotations

import pytest

from harness.reference import ImageReferenceError, Reference

DIGEST = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("text", "registry", "repo", "tag", "digest"),
    [
        ("busybox", "registry-1.docker.io", "library/busybox", "latest", None),
        ("user/app:1.2", "registry-1.docker.io", "user/app", "1.2", None),
        ("127.0.0.1:5000/samples/good:1.0", "127.0.0.1:5000", "samples/good", "1.0", None),
        ("localhost/x", "localhost", "x", "latest", None),
        (f"ghcr.io/o/r@{DIGEST}", "ghcr.io", "o/r", None, DIGEST),
        (f"ghcr.io/o/r:v1@{DIGEST}", "ghcr.io", "o/r", "v1", DIGEST),
    ],
)
def test_parse(text, registry, repo, tag, digest):
    ref = Reference.parse(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (registry, repo, tag, digest)


def test_pinned_uses_digest_never_tag():
    ref = Reference.parse("127.0.0.1:5000/samples/good:1.0").with_digest(DIGEST)
    assert ref.pinned == f"127.0.0.1:5000/samples/good@{DIGEST}"
    assert Reference.parse("busybox").with_digest(DIGEST).pinned == f"docker.io/busybox@{DIGEST}"


def test_loopback_detection():
    assert Reference.parse("127.0.0.1:5000/a").is_loopback
    assert Reference.parse("localhost:5000/a").is_loopback
    assert not Reference.parse("ghcr.io/a/b").is_loopback


@pytest.mark.parametrize(
    ("bad", "says"),
    [
        ("", "not an image reference"),
        ("Upper/Case", "repository"),
        ("a b", "not an image reference"),
        ("x@sha256:12", "digest"),
        ("x:bad tag", "not an image reference"),
    ],
)
def test_bad_references_name_the_input(bad, says):
    with pytest.raises(ImageReferenceError, match=says):
        Reference.parse(bad)
