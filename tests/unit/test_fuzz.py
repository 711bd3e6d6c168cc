"""Property-based fuzzing of the parsers that read what images and users bring.

Each parser, given anything, either returns a value or raises its own error type (a
ValueError that names the input); never another exception, never a hang. The example
budget is fixed so that CI time is too (MULTIARCH_FUZZ_EXAMPLES, default 150 per property);
a longer run: ``MULTIARCH_FUZZ_EXAMPLES=20000 .venv/bin/pytest tests/unit/test_fuzz.py``.
"""

from __future__ import annotations

import io
import json
import os
import struct
import tarfile
import zlib
from collections.abc import Callable
from typing import Any

from elfcraft import elf_for, make_elf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from layerkit import entry, layer

from harness import elf
from harness.layers import LayerError, index_layer, open_decompressed
from harness.manifest import DocumentError, ImageConfig, parse_manifest
from harness.platform import Platform, PlatformError, parse_list
from harness.reference import ImageReferenceError, Reference

BUDGET = settings(
    max_examples=int(os.environ.get("MULTIARCH_FUZZ_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=os.environ.get("CI") == "true",  # CI: the same examples every run
)

ZERO = "sha256:" + "0" * 64


def attempt(fn: Callable[..., Any], *args: Any, error: type[Exception]) -> tuple[Any, str | None]:
    """``fn(*args)`` and None, or None and the message of the parser's own error. Any
    other exception propagates and fails the property."""
    try:
        return fn(*args), None
    except error as exc:
        return None, str(exc)


PLATFORM_TEXT = st.one_of(
    st.text(max_size=40),
    st.lists(
        st.sampled_from(["linux", "windows", "amd64", "arm", "arm64", "v6", "v7", "v8", "x86_64", "/", ""]), max_size=5
    ).map("/".join),
)


@BUDGET
@given(PLATFORM_TEXT)
def test_platform_names(text):
    platform, error = attempt(Platform.parse, text, error=PlatformError)
    if platform is None:
        assert error
    else:
        assert Platform.parse(str(platform)) == platform  # what it prints, it reads back


@BUDGET
@given(st.lists(PLATFORM_TEXT, max_size=4).map(",".join))
def test_platform_lists(text):
    _, error = attempt(parse_list, text, error=PlatformError)
    assert error is None or error


@BUDGET
@given(
    st.one_of(
        st.text(max_size=80),
        st.from_regex(r"[a-z0-9.:-]{0,12}/[a-z0-9._/-]{0,20}(:[\w.-]{0,10})?(@sha256:[0-9a-f]{0,64})?", fullmatch=True),
    )
)
def test_image_references(text):
    ref, error = attempt(Reference.parse, text, error=ImageReferenceError)
    if ref is None:
        assert error is not None
        assert repr(text) in error or text.strip() in error
    else:
        assert Reference.parse(str(ref)) == ref


DIGEST = st.from_regex(r"sha256:[0-9a-f]{64}", fullmatch=True)
JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
DESCRIPTOR = st.fixed_dictionaries(
    {"mediaType": st.sampled_from(["application/vnd.oci.image.manifest.v1+json", "x/y"]) | JSONISH},
    optional={
        "digest": DIGEST | JSONISH,
        "size": st.integers(-5, 10**12) | JSONISH,
        "platform": st.fixed_dictionaries(
            {}, optional={"os": PLATFORM_TEXT | JSONISH, "architecture": PLATFORM_TEXT | JSONISH, "variant": JSONISH}
        )
        | JSONISH,
        "annotations": JSONISH,
    },
)
MEDIA_TYPES = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.v1+json",
    "text/html",
]
MANIFEST = st.fixed_dictionaries(
    {"schemaVersion": st.just(2) | JSONISH},
    optional={
        "mediaType": st.sampled_from(MEDIA_TYPES) | JSONISH,
        "manifests": st.lists(DESCRIPTOR, max_size=4) | JSONISH,
        "config": DESCRIPTOR | JSONISH,
        "layers": st.lists(DESCRIPTOR, max_size=3) | JSONISH,
    },
)


@BUDGET
@given(MANIFEST, st.sampled_from(["", *MEDIA_TYPES]))
def test_manifests_and_indexes(doc, content_type):
    _, error = attempt(parse_manifest, json.dumps(doc).encode(), ZERO, content_type, "fuzz/app:1", error=DocumentError)
    assert error is None or "fuzz/app:1" in error


@BUDGET
@given(st.binary(max_size=200))
def test_manifest_bytes(data):
    _, error = attempt(parse_manifest, data, ZERO, "", "fuzz/app:1", error=DocumentError)
    assert error is None or "fuzz/app:1" in error


@BUDGET
@given(
    st.fixed_dictionaries({}, optional={"os": JSONISH, "architecture": JSONISH, "variant": JSONISH, "config": JSONISH})
    | JSONISH
)
def test_image_configs(doc):
    _, error = attempt(ImageConfig.parse, json.dumps(doc).encode(), "fuzz config", error=DocumentError)
    assert error is None or "fuzz config" in error


SEEDS = [
    elf_for("linux/amd64"),
    elf_for("linux/arm/v6", interp="/lib/ld-linux-armhf.so.3"),
    elf_for("linux/s390x"),
    elf_for("linux/386", interp="/lib/ld-linux.so.2"),
    make_elf(elf_class=32, machine=40, arm_cpu_arch=10),
]


@st.composite
def mutated(draw, seeds=SEEDS):
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(0, 8))):
        at = draw(st.integers(0, len(data) - 1))
        data[at] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    if draw(st.booleans()):  # a huge count or offset in a header field
        at = draw(st.integers(16, max(16, len(data) - 4)))
        data[at : at + 4] = struct.pack("<I", draw(st.sampled_from([0, 1, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF])))
    return bytes(data)


@BUDGET
@given(st.one_of(mutated(), st.binary(max_size=128).map(lambda b: b"\x7fELF" + b)))
def test_elf_headers(data):
    info, error = attempt(lambda: elf.parse(data, "/fuzz/bin", whole=io.BytesIO(data)), error=elf.ELFError)
    assert error is None or "/fuzz/bin" in error
    assert info is None or info.machine >= 0


def _tar(entries) -> bytes:
    return layer(entries, compress=False)


TAR_SEEDS = [
    _tar(
        [
            entry("bin/"),
            entry("bin/tool", elf_for("linux/arm64")),
            entry("bin/sh", link="tool"),
            entry("etc/.wh.passwd", b""),
            entry("lib/.wh..wh..opq", b""),
        ]
    ),
    _tar(
        [
            entry("../../etc/passwd", b"x"),
            entry("/abs/link", link="/etc/shadow"),
            entry("a", link="b"),
            entry("b", link="a"),
            entry("hard", hard="../outside"),
        ]
    ),
]


@BUDGET
@given(st.one_of(mutated(TAR_SEEDS), st.binary(max_size=600)), st.sampled_from(["plain", "gzip", "cut-gzip"]))
def test_layer_streams(data, wrap):
    if wrap != "plain":
        z = zlib.compressobj(wbits=31)
        data = z.compress(data) + z.flush()
        if wrap == "cut-gzip":
            data = data[: len(data) // 2]
    _, error = attempt(
        lambda: index_layer(open_decompressed(io.BytesIO(data), "sha256:fuzz"), "sha256:fuzz"), error=LayerError
    )
    assert error is None or "sha256:fuzz" in error


def test_the_seeds_are_valid_inputs():
    """The mutations start from inputs the parsers accept, so they probe past the first check."""
    for seed in SEEDS:
        elf.parse(seed, "/seed", whole=io.BytesIO(seed))
    for seed in TAR_SEEDS:
        index_layer(io.BytesIO(seed), "seed")
    assert tarfile.is_tarfile(io.BytesIO(TAR_SEEDS[0]))
