"""x86-64 levels from GNU property notes, and the page sizes PT_LOAD alignments allow."""

from __future__ import annotations

import pytest
from elfcraft import make_elf
from layerkit import entry, fs_of

from harness.checks import FAILED, PASSED, check_elf
from harness.elf import HEAD_BYTES, ELFInfo, parse, reads_needed
from harness.platform import Platform

LIBC = "usr/lib/x86_64-linux-gnu/libc.so.6"
BASELINE, V2, V3, V4 = 1, 2, 4, 8


@pytest.mark.parametrize("segment", [0x6474E553, 4], ids=["PT_GNU_PROPERTY", "PT_NOTE"])
def test_the_level_a_file_needs_is_read_from_its_property_note(segment):
    info = parse(make_elf(x86_isa=BASELINE | V3, property_in=segment))
    assert (info.x86_isa, info.x86_level) == (BASELINE | V3, 3)
    assert parse(make_elf()).x86_level == 0  # no note: nothing said


def test_a_note_past_the_head_is_a_range_to_keep():
    data = make_elf(x86_isa=V2, lead=HEAD_BYTES + 100)  # the note after the zeros, past the head
    head = data[:HEAD_BYTES]
    (at, size), *_ = reads_needed(head, "f").ranges
    assert at > HEAD_BYTES
    assert parse(head, "f", ranges={at: data[at : at + size]}).x86_level == 2
    assert parse(head, "f").x86_level == 0  # not read: not claimed


@pytest.mark.parametrize(
    ("platform", "isa", "outcome"),
    [
        ("linux/amd64", BASELINE, PASSED),
        ("linux/amd64", BASELINE | V2, FAILED),
        ("linux/amd64", BASELINE | V3, FAILED),
        ("linux/amd64/v2", V3, FAILED),
        ("linux/amd64/v3", BASELINE | V3, PASSED),
        ("linux/amd64/v4", V4, PASSED),
    ],
)
def test_a_level_above_the_variant_fails(platform, isa, outcome):
    got = check_elf(Platform.parse(platform), fs_of(entry(LIBC, make_elf(x86_isa=isa, etype=3))))
    assert got.outcome == outcome, got.detail
    if outcome == FAILED:
        level = isa.bit_length()
        assert f"/{LIBC} is marked x86-64-v{level} (GNU_PROPERTY_X86_ISA_1_NEEDED)" in got.detail
        assert f"name the platform linux/amd64/v{level}" in got.detail


def test_only_x86_64_files_are_held_to_it():
    """An i386 file's levels are its own; the compat rule for i386 in amd64 stays a warning."""
    i386 = make_elf(elf_class=32, machine=3, x86_isa=V3)
    assert parse(i386).x86_isa == 0
    assert check_elf(Platform.parse("linux/amd64"), fs_of(entry("usr/lib32/libx.so.1", i386))).outcome == PASSED


def test_load_alignment_is_the_page_size_a_file_allows():
    assert parse(make_elf(loads=(0x10000, 0x10000))).load_align == 0x10000
    assert parse(make_elf(loads=(0x1000, 0x10000))).load_align == 0x1000
    assert parse(make_elf()).load_align is None


def test_the_new_facts_survive_the_layer_index_cache():
    info = parse(make_elf(x86_isa=BASELINE | V3, loads=(0x1000,)))
    assert ELFInfo.from_json(info.to_json()) == info
