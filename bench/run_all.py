"""Every benchmark and the reliability suite, one after the other; writes bench/RESULTS.md.

    scripts/bootstrap && .venv/bin/python bench/run_all.py [--out bench/RESULTS.md]

Each benchmark measures side by side in one run and prints its own table; this script runs
them in turn, describes the machine, and adds the reliability table: what the hostile-input,
fault and security tests tried, and how many wrong verdicts, leaked containers and crashes
came of it.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

TOP = Path(__file__).resolve().parents[1]
PY = sys.executable

BENCHES = [
    ("The harness against the tools a user would pick instead", "bench/run_platforms.py"),
    ("ELF audit against pulling, exporting and `file`", "bench/elf_audit.py"),
    ("Reported slowdown against hyperfine", "bench/slowdown.py"),
    ("What asking each engine costs a run", "bench/engine_probe.py"),
    ("How wall time grows with platforms and tests", "bench/scaling.py"),
    ("Cold runs: pulls, audits and starts overlapped", "bench/cold_run.py"),
]
#: The reliability suite: hostile input, faults, security. (file or node, what it attacks with)
RELIABILITY = [
    ("tests/unit/test_fuzz.py", "input"),
    ("tests/unit/test_layers.py", "input"),
    ("tests/unit/test_elf.py", "input"),
    ("tests/unit/test_manifest.py", "input"),
    ("tests/unit/test_oci_layouts.py", "input"),
    ("tests/engine/test_faults.py", "fault"),
    ("tests/engine/test_running.py::test_a_container_killed_mid_test", "fault"),
    ("tests/engine/test_running.py::test_timeouts_are_scaled_and_take_the_container_away", "fault"),
    ("tests/engine/test_plugin_engine.py::test_sigint_mid_run_leaves_no_container", "fault"),
    ("tests/engine/test_plugin_engine.py::test_killed_xdist_worker_leaves_no_container", "fault"),
    ("tests/engine/test_running.py::test_an_engine_stopped_mid_run", "fault"),
    ("tests/engine/test_unseen.py::test_an_index_with_no_runnable_entry", "input"),
    ("tests/engine/test_security.py", "security"),
    ("tests/engine/test_sources.py", "security"),
]
LABEL = "io.multiarch-harness"
NOTES = [
    "Every figure below was measured side by side in this one run. pytest-container is not a",
    "row of its own: it runs commands through testinfra's backends, so its cost per command is",
    "the testinfra row's. testinfra's row is a Python loop without pytest's start-up and runs",
    "no checks; the harness's rows include its built-in checks (config, ELF audit, uname).",
    "The harness runs from a venv that holds it as a user installs it (bench/installed.py).",
]


def sh(*cmd: str) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=30).stdout.strip()
    except OSError:
        return "not found"


def machine() -> list[str]:
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    meminfo = Path("/proc/meminfo").read_text().splitlines()
    cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), "?")
    mem = next((int(line.split()[1]) // 1024 // 1024 for line in meminfo if line.startswith("MemTotal")), 0)
    return [
        f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- CPU: {os.cpu_count()} x {cpu}; memory {mem} GiB",
        f"- kernel: {platform.release()}; {sh('sh', '-c', '. /etc/os-release; echo $PRETTY_NAME')}",
        f"- engine: docker {sh('docker', 'version', '--format', '{{.Server.Version}}')}; "
        f"{sh('sh', '-c', 'qemu-aarch64-static --version | head -n1')}",
        f"- Python {platform.python_version()}; hyperfine: {sh('hyperfine', '--version')}",
    ]


def labelled() -> int:
    return len(sh("docker", "ps", "-aq", "--filter", f"label={LABEL}").split())


def reliability(out_dir: Path) -> tuple[list[str], bool]:
    junit = out_dir / "reliability.xml"  # a temporary directory
    before = labelled()
    nodes = [node for node, _ in RELIABILITY]
    start = time.monotonic()
    proc = subprocess.run(
        [PY, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--junitxml", str(junit), *nodes],
        cwd=TOP,
        capture_output=True,
        text=True,
        check=False,
    )
    took = time.monotonic() - start
    leaked = labelled() - before
    cases = list(ET.parse(junit).getroot().iter("testcase"))
    kinds = {node.split("::")[0]: kind for node, kind in RELIABILITY if "::" not in node}
    kinds |= {node: kind for node, kind in RELIABILITY if "::" in node}

    def kind_of(case: ET.Element) -> str:
        # classname is the module (tests.unit.test_fuzz), or the module and a class in it.
        parts = case.get("classname", "").split(".")
        name = case.get("name", "").split("[")[0]
        for cut in (len(parts), len(parts) - 1):
            file = "/".join(parts[:cut]) + ".py"
            kind = kinds.get(f"{file}::{name}") or kinds.get(file)
            if kind:
                return kind
        return "?"

    count = {k: 0 for k in ("input", "fault", "security")}
    failed = {k: 0 for k in count}
    errors = 0
    for case in cases:
        k = kind_of(case)
        count[k] = count.get(k, 0) + 1
        if case.find("failure") is not None:
            failed[k] = failed.get(k, 0) + 1
        if case.find("error") is not None:
            errors += 1
    examples = int(os.environ.get("MULTIARCH_FUZZ_EXAMPLES", "150"))
    fuzz = sum(1 for c in cases if "test_fuzz" in c.get("classname", "") and "seeds" not in c.get("name", ""))
    rows = [
        "| | tried | wrong verdicts | containers leaked | crashes |",
        "|---|---|---|---|---|",
        f"| hostile inputs: generated (hypothesis, {fuzz} properties x {examples} examples) | "
        f"{fuzz * examples} | {failed['input']} | - | {errors} |",
        f"| hostile inputs: crafted (ELF, layers, documents, layouts: tests) | {count['input'] - fuzz} | "
        f"(in the row above) | - | (in the row above) |",
        f"| faults injected (registry 500/429/hang/cut, killed container, engine stopped, timeout, SIGINT, "
        f"killed worker) | "
        f"{count['fault']} | {failed['fault']} | {leaked} | - |",
        f"| security (privilege, mounts, secrets in every output) | {count['security']} | {failed['security']} | "
        f"- | - |",
    ]
    tail = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    rows += ["", f"pytest: `{tail}` ({took:.0f} s); labelled containers before and after: {before}, {before + leaked}."]
    ok = proc.returncode == 0 and leaked == 0
    return rows, ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(TOP / "bench" / "RESULTS.md"))
    args = parser.parse_args()
    out = Path(args.out)
    lines = ["# Benchmark and reliability results", "", "Written by `bench/run_all.py`. The machine:", ""]
    lines += machine()
    lines += ["", *NOTES]
    ok = True
    start = time.monotonic()
    for title, script in BENCHES:
        print(f"== {script}", file=sys.stderr, flush=True)
        t0 = time.monotonic()
        proc = subprocess.run([PY, script], cwd=TOP, capture_output=True, text=True, check=False)
        ok = ok and proc.returncode == 0
        lines += ["", f"## {title}", "", f"`{script}`, {time.monotonic() - t0:.0f} s:", "", "```"]
        lines += proc.stdout.rstrip().splitlines() or ["(no output)"]
        if proc.returncode != 0:
            lines += [f"exit status {proc.returncode}", *proc.stderr.strip().splitlines()[-20:]]
        lines += ["```"]
        print(proc.stdout, flush=True)
    print("== reliability suite", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-reliability-") as tmp:
        rows, fine = reliability(Path(tmp))
    ok = ok and fine
    lines += ["", "## Reliability", "", *rows]
    lines += ["", f"All of it took {(time.monotonic() - start) / 60:.1f} minutes."]
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(rows))
    print(f"wrote {out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
