"""What a team would write for a Debian-based image: its tools start and work, on every platform.

The marker names the two Debian sample images, so these tests run against them whatever
``--image`` says (the busybox samples have no bash). They have six platforms:

    pytest sample_images/tests/test_debian.py \
        --platforms linux/amd64,linux/386,linux/arm64,linux/arm/v7,linux/ppc64le,linux/s390x
"""

from __future__ import annotations

import os

import pytest

REGISTRY = os.environ.get("SAMPLE_REGISTRY", "127.0.0.1:5000")
pytestmark = pytest.mark.image(f"{REGISTRY}/samples/debian:1.0", f"{REGISTRY}/samples/debian-defects:1.0")


def test_bash_runs(container):
    result = container.run(["bash", "-c", 'words=(one two three); echo "${#words[@]} words on $(uname -m)"'])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("3 words on ")


def test_python_sees_its_platform(container, platform):
    # Word size and byte order as the platform has them: 32-bit on 386 and arm, big-endian on s390x.
    code = "import struct, sys; print(sys.byteorder, struct.calcsize('P') * 8, sum(i * i for i in range(1000)))"
    result = container.run(["python3", "-c", code])
    assert result.exit_code == 0, result.stderr
    order = "big" if platform.architecture == "s390x" else "little"
    bits = 32 if platform.architecture in ("386", "arm") else 64
    assert result.stdout.split() == [order, str(bits), str(sum(i * i for i in range(1000)))]


def test_openssl_runs(container):
    result = container.run(["openssl", "version"])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("OpenSSL 3.")


def test_curl_runs(container):
    result = container.run(["curl", "--version"])
    assert result.exit_code == 0, result.stderr
    assert "OpenSSL/3." in result.stdout


def test_hello_greets(container):
    result = container.run(["/usr/local/bin/hello"])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("hello, world")
