"""binfmt_misc matching, against the handlers Debian's qemu-user-static registers here."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from harness.arch import spec_for
from harness.binfmt import Handler, elf_header, handler_for, read_handlers
from harness.platform import Platform

DEBIAN = Path(__file__).parent.parent / "data" / "binfmt-debian"


@pytest.fixture
def handlers():
    return read_handlers(DEBIAN)


@pytest.mark.parametrize(
    ("platform", "name"),
    [
        ("linux/arm64", "qemu-aarch64"),
        ("linux/arm/v7", "qemu-arm"),
        ("linux/arm/v5", "qemu-arm"),
        ("linux/ppc64le", "qemu-ppc64le"),
        ("linux/s390x", "qemu-s390x"),
        ("linux/mips64le", "qemu-mips64el"),
        ("linux/mips64", "qemu-mips64"),
        ("linux/riscv64", "qemu-riscv64"),
        ("linux/loong64", "qemu-loongarch64"),
    ],
)
def test_each_platform_finds_its_handler(handlers, platform, name):
    handler = handler_for(spec_for(Platform.parse(platform)), handlers)
    assert handler is not None
    assert handler.name == name
    assert handler.opens_early  # Debian registers with flags PF


def test_no_handler_for_the_native_386(handlers):
    assert handler_for(spec_for(Platform.parse("linux/386")), handlers) is None


def test_non_elf_handlers_never_match(handlers):
    jar = next(h for h in handlers if h.name == "jar")  # magic PK\x03\x04
    assert not jar.matches(elf_header(spec_for(Platform.parse("linux/arm64"))))


def test_extension_handlers_are_skipped():
    assert Handler.parse("py", "enabled\ninterpreter /usr/bin/python3\nflags: \nextension .py\n") is None


def test_disabled_and_flagless_handlers_are_seen_as_such():
    text = (
        "disabled\ninterpreter /usr/bin/qemu-aarch64\nflags: P\noffset 0\n"
        "magic 7f454c460201010000000000000000000200b700\nmask ffffffffffffff00fffffffffffffffffeffffff\n"
    )
    handler = Handler.parse("qemu-aarch64", text)
    assert handler is not None
    assert not handler.enabled
    assert not handler.opens_early
    assert handler.matches(elf_header(spec_for(Platform.parse("linux/arm64"))))


def test_missing_directory_means_no_handlers(tmp_path):
    assert read_handlers(tmp_path / "nope") == []


def test_status_and_register_are_not_handlers(tmp_path):
    shutil.copytree(DEBIAN, tmp_path / "b")
    (tmp_path / "b" / "register").write_text("")
    assert {h.name for h in read_handlers(tmp_path / "b")} >= {"qemu-aarch64"}
    assert "register" not in {h.name for h in read_handlers(tmp_path / "b")}
