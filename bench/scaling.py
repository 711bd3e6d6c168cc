"""How a run's wall time grows with platforms and with tests, side by side in one run.

    .venv/bin/python bench/scaling.py

- platforms: the ten command tests of bench/run_platforms.py on 1, 2, 4 and 8 platforms of
  the good sample image (``-n 0``);
- tests: 1, 10 and 100 command tests on two platforms (linux/amd64 natively, linux/arm64
  under QEMU).

The container of a platform starts once and every test reuses it, so an extra test should
cost one ``docker exec``, far below one container start (``docker run --rm IMAGE true``,
timed here too).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tabulate import tabulate

TOP = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TOP / "bench"))

from run_platforms import IMAGE, PLATFORMS, digests, harness_cmd, pytest_suite  # noqa: E402

TWO = ["linux/amd64", "linux/arm64"]


def run(where: Path, platforms: list[str], test_file: str) -> float:
    cmd = harness_cmd(platforms, 0, test_file)
    start = time.perf_counter()
    out = subprocess.run(cmd, cwd=where, capture_output=True, text=True, check=False)
    took = time.perf_counter() - start
    if out.returncode != 0:
        raise SystemExit(f"the harness run failed:\n{out.stdout[-3000:]}")
    return took


def echo_suite(n: int) -> str:
    return f"""
import pytest

@pytest.mark.parametrize("i", range({n}))
def test_echo(container, i):
    assert container.run(["echo", str(i)]).stdout.strip() == str(i)
"""


def container_start(ref: str, platform: str, reps: int = 5) -> float:
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        subprocess.run(["docker", "run", "--rm", "--platform", platform, ref, "true"], check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    refs = digests()
    repo = IMAGE.rsplit(":", 1)[0]
    with tempfile.TemporaryDirectory(prefix="bench-scaling-") as tmp:
        where = Path(tmp)
        (where / "pytest.ini").write_text("[pytest]\n")
        (where / "test_commands.py").write_text(pytest_suite())
        for n in (1, 10, 100):
            (where / f"test_echo_{n}.py").write_text(echo_suite(n))
        run(where, PLATFORMS, "test_commands.py")  # warm: every image pulled, caches filled
        by_platforms = {n: run(where, PLATFORMS[:n], "test_commands.py") for n in (1, 2, 4, 8)}
        by_tests = {n: run(where, TWO, f"test_echo_{n}.py") for n in (1, 10, 100)}
    start_native = container_start(f"{repo}@{refs['linux/amd64']}", "linux/amd64")
    start_emulated = container_start(f"{repo}@{refs['linux/arm64']}", "linux/arm64")
    rows = [
        [f"{n} platform{'s' if n > 1 else ''}, 10 tests", f"{t:.1f}", f"{t / by_platforms[1]:.2f}"]
        for n, t in by_platforms.items()
    ]
    rows += [
        [f"2 platforms, {n} test{'s' if n > 1 else ''}", f"{t:.1f}", f"{t / by_tests[1]:.2f}"]
        for n, t in by_tests.items()
    ]
    per_test = (by_tests[100] - by_tests[10]) / (90 * len(TWO))
    print(f"{IMAGE}; -n 0; {os.cpu_count()} CPUs")
    print(tabulate(rows, headers=["run", "seconds", "x the smallest"], tablefmt="github"))
    print()
    print(
        tabulate(
            [
                ["one more test on one platform (from 10 to 100 tests, 2 platforms)", f"{per_test * 1000:.0f} ms"],
                ["one container start, linux/amd64 (docker run --rm IMAGE true)", f"{start_native * 1000:.0f} ms"],
                ["one container start, linux/arm64 under QEMU", f"{start_emulated * 1000:.0f} ms"],
                ["extra test / native container start", f"{per_test / start_native:.2f}"],
            ],
            headers=["cost", ""],
            tablefmt="github",
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
