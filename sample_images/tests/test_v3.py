"""samples/debian-v3: the x86-64-v3 binaries, in the image whose index promises v3.

    pytest sample_images/tests/test_v3.py --platforms linux/amd64/v3

They run here natively, on a CPU that has AVX2; the same files under plain linux/amd64
(samples/debian-abi) fail its elf check.
"""

from __future__ import annotations

import os

import pytest

REGISTRY = os.environ.get("SAMPLE_REGISTRY", "127.0.0.1:5000")
pytestmark = pytest.mark.image(f"{REGISTRY}/samples/debian-v3:1.0")


@pytest.mark.parametrize("program", ["/usr/local/bin/hello-v3", "/usr/local/bin/hello-go-v3"])
def test_v3_program_runs(container, program):
    result = container.run([program])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip(), "it printed nothing"
