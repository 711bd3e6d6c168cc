"""The report as one self-contained HTML page: no script, no network, no external assets.

The page holds, per image, the matrix of platforms, what each red row caught (in full),
the tests x platforms grid, and a bar chart of the slowdown per platform (inline SVG).
A Content-Security-Policy forbids every fetch, so the page renders the same offline.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

from .checks import FAILED, builtin_checks
from .reference import short_name
from .report import MARK, ImageResult, PlatformResult, Report, Row, sorted_platforms, write_atomic

_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
_STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 72em;
       padding: 0 1em; color: #1f2328; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #d0d7de; }
h3 { font-size: 1em; }
.verdict-pass { color: #1a7f37; } .verdict-fail { color: #cf222e; }
table { border-collapse: collapse; margin: .5em 0 1em; }
th, td { padding: .25em .7em; border: 1px solid #d0d7de; text-align: left; white-space: nowrap; }
th { background: #f6f8fa; }
tr.fail td { background: #ffebe9; } tr.pass td { background: #dafbe1; } tr.skip td { background: #fff8c5; }
td.ok { color: #1a7f37; } td.warn { color: #9a6700; font-weight: 600; }
td.bad { color: #cf222e; font-weight: 600; } td.skip { color: #9a6700; }
code, .digest { font-family: ui-monospace, "SFMono-Regular", Menlo, monospace; font-size: .92em; }
ul.caught li, ul.warnings li { margin: .4em 0; white-space: pre-wrap; }
.meta { color: #59636e; }
.wide { overflow-x: auto; }
ul.summary { list-style: none; padding-left: 0; } ul.summary li { margin: .2em 0; }
svg text { font: 12px system-ui, sans-serif; fill: #1f2328; }
"""
_CELL_CLASS = {"ok": "ok", "FAIL": "bad", "skip": "skip", "warn": "warn"}  # by the cell's mark


def render(report: Report) -> str:
    rows = report.rows()  # also computes the slowdowns
    verdict = report.verdict()
    cls = "verdict-fail" if report.failed or not report.run.complete else "verdict-pass"
    emulated = ", ".join(report.emulated) or "none"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Multi-architecture results: {verdict}</title>",
        f"<style>{_STYLE}</style></head><body>",
        f'<h1 id="verdict" class="{cls}">Multi-architecture results: {verdict}</h1>',
        f'<p class="meta">Host platform <code>{escape(report.host_platform or "?")}</code>, engine '
        f"{escape(report.engine or '?')}; emulated here: {escape(emulated)}."
        + (f" Limit: slowdown at most {report.max_slowdown:g}x." if report.max_slowdown is not None else "")
        + "</p>",
        *(f'<p class="meta engine">{escape(line.strip())}</p>' for line in report.engine_lines() if line),
    ]
    if not report.run.complete:
        parts.append(
            f'<p id="incomplete" class="verdict-fail"><b>Incomplete run:</b> {escape(report.incomplete_text())}.</p>'
        )
    parts.append('<ul class="summary">')
    for image in report.images.values():
        mine = [r for r in rows if r.ref == image.ref]
        red = [r.platform for r in mine if r.failed]
        what = f"failed on {', '.join(red)} ({len(red)} of {len(mine)})" if red else f"all {len(mine)} platforms passed"
        mark = '<span class="verdict-fail">✗</span>' if red else '<span class="verdict-pass">✓</span>'
        parts.append(f"<li>{mark} <b>{escape(short_name(image.ref))}</b>: {escape(what)}</li>")
    parts.append("</ul>")
    for image in report.images.values():
        parts.extend(_image(report, image, [r for r in rows if r.ref == image.ref]))
    parts.append(
        '<p class="meta">Slowdown: per platform, the geometric mean of the ratios of command time '
        "(inside the container, not start-up) against the same command on the native platform, "
        "over every command that passed on both.</p>"
    )
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_html(report: Report, path: str | Path) -> None:
    write_atomic(path, render(report))


def _image(report: Report, image: ImageResult, rows: list[Row]) -> list[str]:
    name = short_name(image.ref)
    failed = any(r.failed for r in rows)
    out = [
        f'<section class="image" data-ref="{escape(image.ref)}">',
        f'<h2><span class="{"verdict-fail" if failed else "verdict-pass"}">{"✗" if failed else "✓"}</span> '
        f"{escape(image.ref)}</h2>",
    ]
    if image.digest:
        single = " (a single image, not a manifest list)" if image.is_index is False else ""
        out.append(f'<p class="meta">Index <span class="digest">{escape(image.digest)}</span>{single}</p>')
    out.append('<table class="matrix"><thead><tr>')
    out.extend(f"<th>{h}</th>" for h in ("platform", "mode"))
    out.extend(f'<th title="{escape(check.about)}">{escape(check.name)}</th>' for check in builtin_checks())
    out.extend(f"<th>{h}</th>" for h in ("tests p/f/s", "slowdown", "verdict"))
    out.append("</tr></thead><tbody>")
    for row in rows:
        kind = "fail" if row.failed else ("skip" if row.verdict == "skip" else "pass")
        cells = [row.platform, row.mode, *row.checks, row.tests, row.slowdown, row.verdict]
        out.append(f'<tr class="{kind}" data-platform="{escape(row.platform)}">')
        out.extend(f'<td class="{_CELL_CLASS.get(c, "")}">{escape(c)}</td>' for c in cells)
        out.append("</tr>")
    out.append("</tbody></table>")
    caught = [r for r in rows if r.failed and r.reason]
    if caught:
        out.append(f'<h3>What the red rows caught ({len(caught)})</h3><ul class="caught">')
        for row in caught:
            out.append(
                f'<li data-platform="{escape(row.platform)}"><b>{escape(row.platform)}</b>: {escape(row.reason)}'
            )
            out.extend(_failed_tests(image.platforms.get(row.platform)))
            out.append("</li>")
        out.append("</ul>")
    warned = [(r, w) for r in rows for w in r.warnings]
    if warned:
        out.append(f'<h3>Warnings: the checks passed ({len(warned)})</h3><ul class="warnings">')
        out.extend(
            f'<li data-platform="{escape(r.platform)}"><b>{escape(r.platform)}</b>: {escape(w)}</li>' for r, w in warned
        )
        out.append("</ul>")
    lines = image.release_lines()
    if lines:
        out.append('<h3>The index as a whole</h3><ul class="release">')
        out.extend(f"<li>{escape(line.strip())}</li>" for line in lines)
        out.append("</ul>")
    out.extend(_tests(report, image))
    out.extend(_chart(report, image, name))
    out.append("</section>")
    return out


def _failed_tests(plat: PlatformResult | None) -> list[str]:
    if plat is None:
        return []
    failed = [t for t in plat.tests.values() if t.outcome == FAILED]
    if not failed:
        return []
    items = "".join(f"<li><code>{escape(t.nodeid)}</code>: {escape(t.detail)}</li>" for t in failed)
    return [f"<ul>{items}</ul>"]


def _tests(report: Report, image: ImageResult) -> list[str]:
    plats, tests = report.test_grid(image)
    if not tests:
        return []
    out = ['<h3>Tests on each platform</h3><div class="wide"><table class="tests"><thead><tr><th>test</th>']
    out.extend(f'<th title="{escape(p)}">{escape(p.removeprefix("linux/"))}</th>' for p in plats)
    out.append("</tr></thead><tbody>")
    for name, cells in tests:
        out.append(f"<tr><td><code>{escape(name)}</code></td>")
        for p in plats:
            text = MARK.get(cells.get(p, ""), "-")
            cls = _CELL_CLASS.get(text, "")
            out.append(f'<td class="{cls}">{text}</td>')
        out.append("</tr>")
    out.append("</tbody></table></div>")
    return out


def _chart(report: Report, image: ImageResult, name: str) -> list[str]:
    """Horizontal bars, one per platform with a figure; a red line marks --max-slowdown."""
    plats = [p for p in sorted_platforms(image.platforms.values()) if p.slowdown is not None]
    if not plats:
        return []
    top = max([p.slowdown or 0.0 for p in plats] + [report.max_slowdown or 0.0, 1.0]) * 1.1
    label_w, bar_w, row_h = 120, 460, 24
    height = row_h * len(plats) + 30
    width = label_w + bar_w + 150
    out = [
        "<h3>Slowdown against native, per platform</h3>",
        f'<svg class="chart" role="img" aria-label="slowdown of {escape(name)} per platform" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">',
    ]
    for i, plat in enumerate(plats):
        y = 10 + i * row_h
        value = plat.slowdown or 0.0
        w = max(1.0, bar_w * value / top)
        colour = "#cf222e" if plat.over_limit else ("#8c959f" if plat.mode == "native" else "#0969da")
        out.append(f'<text x="{label_w - 8}" y="{y + 15}" text-anchor="end">{escape(plat.platform)}</text>')
        out.append(
            f'<rect class="bar" data-platform="{escape(plat.platform)}" data-slowdown="{value:.3f}" '
            f'x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row_h - 8}" fill="{colour}"></rect>'
        )
        out.append(
            f'<text x="{label_w + w + 6:.1f}" y="{y + 15}">{value:.2f}x ({plat.slowdown_samples} samples, '
            f"{escape(plat.mode)})</text>"
        )
    if report.max_slowdown is not None:
        x = label_w + bar_w * report.max_slowdown / top
        out.append(
            f'<line class="limit" x1="{x:.1f}" x2="{x:.1f}" y1="4" y2="{height - 20}" stroke="#cf222e" '
            'stroke-dasharray="4 3"></line>'
        )
        out.append(f'<text x="{x:.1f}" y="{height - 6}" text-anchor="middle">limit {report.max_slowdown:g}x</text>')
    out.append("</svg>")
    return out
