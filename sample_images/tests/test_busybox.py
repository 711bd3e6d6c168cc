"""What a team would write for its own image: a few command tests, run on every platform."""

from __future__ import annotations

import hashlib


def test_shell_runs(container):
    result = container.run(["sh", "-c", "echo hello from $(uname -m)"])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("hello from ")


def test_sha256_is_right(container):
    # Byte order and word size bugs show up as wrong digests on s390x or 32-bit platforms.
    data = "multiarch\n" * 1000
    result = container.run(["sh", "-c", "yes multiarch | head -n 1000 | sha256sum"])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.split()[0] == hashlib.sha256(data.encode()).hexdigest()


def test_gzip_roundtrip(container):
    script = "seq 1 200000 > /tmp/n && gzip -c /tmp/n | gunzip -c | cmp - /tmp/n && echo same"
    result = container.run(["sh", "-c", script])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == "same"


def test_shell_loop(container):
    result = container.run(["sh", "-c", "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; echo $i"])
    assert result.stdout.strip() == "20000"
