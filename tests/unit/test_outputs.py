"""The JUnit rewrite and the HTML page, on crafted input; the engine tier checks both on a
real run (tests/engine/test_samples.py)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import replace
from html.parser import HTMLParser

import pytest
from pytest_multiarch.junit import split_by_platform
from test_report import nine_platform_report

from harness.html import render

JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites name="pytest tests"><testsuite name="pytest" errors="0" failures="2" skipped="1" tests="5"
 time="3.0" timestamp="2026-11-23T10:00:00" hostname="h">
<testcase classname="t" name="test_a[linux/arm64]" time="1.0"><properties>
 <property name="platform" value="linux/arm64"/><property name="mode" value="emulated"/></properties>
 <failure message="boom">boom</failure></testcase>
<testcase classname="t" name="test_a[linux/amd64]" time="0.5"><properties>
 <property name="platform" value="linux/amd64"/></properties></testcase>
<testcase classname="t" name="test_b[linux/arm64]" time="1.0"><properties>
 <property name="platform" value="linux/arm64"/></properties><skipped message="no"/></testcase>
<testcase classname="t" name="test_plain" time="0.25"><failure message="x">x</failure></testcase>
<testcase classname="multiarch" name="index" time="0.25"/>
</testsuite></testsuites>
"""


def test_junit_gets_one_suite_per_platform_with_its_own_counts(tmp_path):
    path = tmp_path / "junit.xml"
    path.write_text(JUNIT)
    split_by_platform(path)
    suites = {s.get("name"): s for s in ET.parse(path).getroot().iter("testsuite")}
    assert list(suites) == ["pytest", "pytest (linux/amd64)", "pytest (linux/arm64)"]
    arm = suites["pytest (linux/arm64)"]
    assert (arm.get("tests"), arm.get("failures"), arm.get("skipped"), arm.get("errors")) == ("2", "1", "1", "0")
    assert float(arm.get("time")) == pytest.approx(2.0)
    assert arm.get("timestamp") == "2026-11-23T10:00:00"
    assert [c.get("name") for c in arm] == ["test_a[linux/arm64]", "test_b[linux/arm64]"]
    rest = suites["pytest"]
    assert (rest.get("tests"), rest.get("failures"), rest.get("skipped")) == ("2", "1", "0")
    # Nothing is lost: every test case is still there, once.
    assert sum(int(s.get("tests")) for s in suites.values()) == 5


def test_junit_without_platforms_is_left_as_it_was(tmp_path):
    path = tmp_path / "junit.xml"
    path.write_text('<testsuites><testsuite name="pytest" tests="1"><testcase name="t"/></testsuite></testsuites>')
    split_by_platform(path)
    assert [s.get("name") for s in ET.parse(path).getroot().iter("testsuite")] == ["pytest"]


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def test_html_page_is_self_contained_and_holds_the_matrix():
    report = nine_platform_report()
    report.max_slowdown = 8
    page = render(report)
    parsed = _Collect()
    parsed.feed(page)
    tags = [t for t, _ in parsed.tags]
    assert not {"script", "link", "img", "iframe", "object"} & set(tags)
    for _, attrs in parsed.tags:
        for name in ("src", "href", "action"):
            assert name not in attrs, attrs
    csp = next(a for t, a in parsed.tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy")
    assert csp["content"].startswith("default-src 'none'")
    rows = [a for t, a in parsed.tags if t == "tr" and "data-platform" in a]
    assert len(rows) == 9
    assert sum(1 for a in rows if a["class"] == "fail") == 8
    bars = [a for t, a in parsed.tags if t == "rect" and a.get("class") == "bar"]
    assert len(bars) == 9
    assert any(t == "line" and a.get("class") == "limit" for t, a in parsed.tags)
    text = " ".join(parsed.text)
    assert "/usr/local/bin/tool is ELF64 LSB x86-64 (EM_X86_64), expected ELF64 LSB MIPS (EM_MIPS)" in text


def test_html_escapes_what_images_and_tests_bring():
    report = nine_platform_report()
    image = next(iter(report.images.values()))
    plat = image.platforms["linux/arm64"]
    plat.checks["elf"] = replace(plat.checks["elf"], detail="<script>alert(1)</script> & more")
    page = render(report)
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in page


def test_html_shows_warnings_in_full_and_an_incomplete_run_first():
    report = nine_platform_report()
    image = next(iter(report.images.values()))
    image.platforms["linux/amd64"].checks["elf"] = replace(
        image.platforms["linux/amd64"].checks["elf"],
        outcome="passed",
        detail="723 ELF files",
        warnings=("272 files under /usr/lib32 are ELF32 LSB Intel 80386: 32-bit x86 compat code",),
    )
    report.run.incomplete = ["terminated by SIGTERM"]
    page = render(report)
    parsed = _Collect()
    parsed.feed(page)
    row = next(a for t, a in parsed.tags if t == "tr" and a.get("data-platform") == "linux/amd64")
    assert row["class"] == "pass"
    assert any(t == "td" and a.get("class") == "warn" for t, a in parsed.tags)
    text = " ".join(parsed.text)
    assert "272 files under /usr/lib32 are ELF32 LSB Intel 80386: 32-bit x86 compat code" in text
    assert "Multi-architecture results: incomplete run" in text
    assert "terminated by SIGTERM" in text
    assert page.index('id="incomplete"') < page.index("<table")
