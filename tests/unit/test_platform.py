from __future__ import annotations

import pytest

from harness.platform import Platform, PlatformError, parse_list, sort_key


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("linux/amd64", "linux/amd64"),
        ("linux/x86_64", "linux/amd64"),
        ("x86-64", "linux/amd64"),
        ("linux/arm64/v8", "linux/arm64"),
        ("aarch64", "linux/arm64"),
        ("LINUX/ARM64", "linux/arm64"),
        ("linux/arm", "linux/arm/v7"),
        ("armhf", "linux/arm/v7"),
        ("armel", "linux/arm/v5"),
        ("linux/arm/7", "linux/arm/v7"),
        ("linux/arm/v6", "linux/arm/v6"),
        ("i386", "linux/386"),
        ("linux/ppc64el", "linux/ppc64le"),
        ("mips64el", "linux/mips64le"),
        ("windows/amd64", "windows/amd64"),
    ],
)
def test_parse_normalises_like_containerd(text, expected):
    assert str(Platform.parse(text)) == expected


def test_equal_after_normalisation():
    assert Platform.parse("linux/arm64/v8") == Platform.parse("aarch64")
    assert Platform.from_oci({"os": "linux", "architecture": "arm64", "variant": "v8"}) == Platform.parse("linux/arm64")


@pytest.mark.parametrize("bad", ["", "/", "linux/", "linux//v7", "a/b/c/d"])
def test_malformed_names_say_the_expected_form(bad):
    with pytest.raises(PlatformError, match="OS/ARCH"):
        Platform.parse(bad)


def test_all_means_every_entry():
    assert parse_list("all") is None
    assert parse_list("") is None


def test_list_is_normalised_and_deduplicated():
    got = parse_list("linux/amd64, aarch64,linux/arm64/v8,linux/arm/v7")
    assert [str(p) for p in got] == ["linux/amd64", "linux/arm64", "linux/arm/v7"]


@pytest.mark.parametrize(
    ("typo", "suggestion"),
    [
        ("linux/amd46", "linux/amd64"),
        ("linux/arm46", "linux/arm64"),
        ("linux/s390", "linux/s390x"),
        ("linux/ppc64l", "linux/ppc64le"),
    ],
)
def test_typo_suggests_nearest(typo, suggestion):
    with pytest.raises(PlatformError, match=f"did you mean {suggestion}"):
        parse_list(typo)


def test_fallbacks_follow_containerd():
    def names(p):
        return [str(x) for x in Platform.parse(p).compatible()]

    # An amd64 engine runs the x86-64 levels natively too (its CPU decides whether it reaches them).
    assert names("linux/amd64") == ["linux/amd64", "linux/amd64/v2", "linux/amd64/v3", "linux/amd64/v4", "linux/386"]
    assert names("linux/amd64/v3") == ["linux/amd64/v3", "linux/amd64/v2", "linux/amd64/v4", "linux/386"]
    assert names("linux/arm64") == ["linux/arm64", "linux/arm/v8", "linux/arm/v7", "linux/arm/v6", "linux/arm/v5"]
    assert names("linux/arm/v6") == ["linux/arm/v6", "linux/arm/v5"]
    assert names("linux/arm/v5") == ["linux/arm/v5"]
    assert names("linux/s390x") == ["linux/s390x"]


def test_attestation_platform_is_unknown():
    assert Platform.from_oci({"os": "unknown", "architecture": "unknown"}).is_unknown


def test_sort_puts_amd64_first():
    plats = [Platform.parse(p) for p in ["linux/s390x", "linux/zz99", "linux/arm64", "linux/amd64"]]
    assert [str(p) for p in sorted(plats, key=sort_key)] == ["linux/amd64", "linux/arm64", "linux/s390x", "linux/zz99"]
