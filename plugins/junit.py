"""JUnit XML with one test suite per platform.

pytest writes every test case into a single suite. CI dashboards (GitLab, Jenkins, Azure)
group and count by suite, so the controller rewrites the file once pytest has written it:
each test case that carries a ``platform`` property moves into a suite named after that
platform (``pytest (linux/arm64)``), with its own counts; the other test cases stay where
they were.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

from harness.platform import Platform, sort_key
from harness.report import write_atomic


def split_by_platform(path: str | Path, failures: Sequence[tuple[str, str, str]] = ()) -> None:
    """Rewrite the file pytest wrote: a suite per platform, plus a failed test case per
    (platform, name, message) of ``failures`` (see :func:`_add_failures`)."""
    path = Path(path)
    tree = ET.parse(path)
    root = tree.getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    if root.tag == "testsuite":
        wrapper = ET.Element("testsuites")
        wrapper.append(root)
        root, tree = wrapper, ET.ElementTree(wrapper)
    for suite in suites:
        by_platform: dict[str, list[ET.Element]] = {}
        for case in list(suite.findall("testcase")):
            platform = _platform(case)
            if platform is not None:
                by_platform.setdefault(platform, []).append(case)
                suite.remove(case)
        if not by_platform:
            continue
        base = suite.get("name", "pytest")
        at = list(root).index(suite)
        new = []
        for platform in sorted(by_platform, key=_order):
            part = ET.Element("testsuite", {k: v for k, v in suite.attrib.items() if k in ("timestamp", "hostname")})
            part.set("name", f"{base} ({platform})")
            part.extend(by_platform[platform])
            _count(part)
            new.append(part)
        _count(suite)
        keep = [suite] if suite.findall("testcase") else []
        root[at : at + 1] = keep + new
    _add_failures(root, failures)
    ET.indent(tree)
    write_atomic(path, lambda tmp: tree.write(tmp, encoding="utf-8", xml_declaration=True))


def _platform(case: ET.Element) -> str | None:
    for prop in case.iter("property"):
        if prop.get("name") == "platform":
            return prop.get("value")
    return None


def _order(platform: str) -> tuple[int, str]:
    try:
        return sort_key(Platform.parse(platform))
    except ValueError:
        return (1 << 16, platform)


def _count(suite: ET.Element) -> None:
    cases = suite.findall("testcase")
    suite.set("tests", str(len(cases)))
    for attr, tag in (("failures", "failure"), ("errors", "error"), ("skipped", "skipped")):
        suite.set(attr, str(sum(1 for c in cases if c.find(tag) is not None)))
    suite.set("time", f"{sum(float(c.get('time') or 0) for c in cases):.3f}")


def _add_failures(root: ET.Element, failures: Sequence[tuple[str, str, str]]) -> None:
    """A platform failed by a run-wide rule (``--max-slowdown``) has no test case of its
    own, and a dashboard that reads JUnit alone must still see it red."""
    for platform, name, message in failures:
        suite = next((s for s in root.iter("testsuite") if s.get("name", "").endswith(f"({platform})")), None)
        if suite is None:
            suite = ET.SubElement(root, "testsuite", {"name": f"pytest ({platform})"})
        case = ET.SubElement(suite, "testcase", {"classname": "multiarch", "name": name, "time": "0"})
        ET.SubElement(case, "failure", {"message": message}).text = message
        props = ET.SubElement(case, "properties")
        ET.SubElement(props, "property", {"name": "platform", "value": platform})
        _count(suite)
