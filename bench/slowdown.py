"""The slowdown the harness reports, against hyperfine, side by side in one run.

    .venv/bin/python bench/slowdown.py [--runs 10]

1. The harness runs on the good sample image (native and emulated platforms, built-in
   checks and the slowdown probe only, no user tests) and reports a slowdown per platform:
   the geometric mean over its commands (the uname check and the probe's ``start``,
   ``shell`` and ``hash``) of the ratio of command time against the native platform.
2. hyperfine (Debian's package) times the same commands with ``docker exec`` into one
   container per platform, started the way the harness starts them (same digest, same
   QEMU_CPU), and the same ratios and geometric mean are taken from its mean times.

The harness times an exec through the engine's API; hyperfine times the docker CLI, which
first has to start (a Go program reading its config and greeting the engine) before it
does the same three API calls. That start-up is the same for every platform (the CLI runs
natively), so it pulls hyperfine's ratios towards 1. The table shows hyperfine's ratios as
measured, and with the CLI's start-up taken out of every time: hyperfine measures it in the
same run as ``docker version``, which starts the CLI and makes one API call.

Target (issue 5): the harness's figure within +-15% of hyperfine's for every platform.
Rounds alternate between the two so that drift of a noisy machine hits both alike.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from tabulate import tabulate

TOP = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TOP))
sys.path.insert(0, str(TOP / "bench"))

from run_platforms import IMAGE, harness_cmd  # noqa: E402

from harness import Harness, probe  # noqa: E402
from harness.session import Target  # noqa: E402

PLATFORMS = ["linux/amd64", "linux/arm64", "linux/arm/v7", "linux/arm/v6", "linux/ppc64le", "linux/s390x"]
TOLERANCE = 0.15


def harness_run(work: Path) -> dict[str, dict]:
    """One pytest run of the harness; per platform, its reported slowdown and samples."""
    (work / "pytest.ini").write_text("[pytest]\n")
    (work / "test_nothing.py").write_text("")
    out = work / "report.json"
    cmd = harness_cmd(PLATFORMS, 0, "--multiarch-json", str(out))
    proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.exit(f"the harness run failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}")
    (image,) = json.loads(out.read_text())["images"]
    return {p["platform"]: p for p in image["platforms"]}


def timed_commands(harness: Harness, target: Target) -> dict[str, list[str]]:
    """The commands the harness times on ``target``'s platform, as it runs them: the uname
    check, and the probe's commands with their paths found in the image."""
    fs, path = harness.filesystem(target), harness.config(target).path_dirs
    uname = fs.which("uname", path)
    assert uname is not None, f"{target.image} has no uname"
    probes = {f"probe:{cmd.name}": list(cmd.argv) for cmd in probe.commands(fs, path)}
    return {"check:uname": [uname, "-m"], **probes}


def hyperfine(
    containers: dict[str, str], commands: dict[str, list[str]], runs: int, work: Path
) -> tuple[dict[str, dict[str, float]], float]:
    """Mean seconds of ``docker exec CONTAINER command``, per platform and command; and of
    ``docker version`` (the CLI's own start-up)."""
    out: dict[str, dict[str, float]] = {}
    export = work / "hyperfine.json"
    subprocess.run(
        ["hyperfine", "-N", "--warmup", "2", "--runs", str(runs), "--export-json", str(export), "docker version"],
        check=True,
        capture_output=True,
    )
    cli = json.loads(export.read_text())["results"][0]["mean"]
    for platform, cid in containers.items():
        export = work / "hyperfine.json"
        names, cmds = [], []
        for name, argv in commands.items():
            names.append(name)
            cmds.append(" ".join(["docker", "exec", cid, *(_quote(a) for a in argv)]))
        subprocess.run(
            ["hyperfine", "-N", "--warmup", "2", "--runs", str(runs), "--export-json", str(export), *cmds],
            check=True,
            capture_output=True,
        )
        results = json.loads(export.read_text())["results"]
        out[platform] = {name: r["mean"] for name, r in zip(names, results, strict=True)}
    return out, cli


def _quote(arg: str) -> str:
    # hyperfine -N splits on whitespace with shell-like quoting.
    return "'" + arg.replace("'", "'\"'\"'") + "'" if any(c in arg for c in " $;[]()") else arg


def geomean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10, help="hyperfine runs per command (default 10)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of both (default 3)")
    args = parser.parse_args()
    if not shutil.which("hyperfine"):
        sys.exit("hyperfine is missing: apt-get install hyperfine (scripts/bootstrap installs it)")
    reported: dict[str, list[float]] = {p: [] for p in PLATFORMS}
    measured: dict[str, list[float]] = {p: [] for p in PLATFORMS}
    raw: dict[str, list[float]] = {p: [] for p in PLATFORMS}
    cli_times: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-slowdown-") as tmp, Harness(",".join(PLATFORMS)) as harness:
        work = Path(tmp)
        plan = harness.plan(IMAGE)
        containers = {str(t.platform): str(harness.container(t).id) for t in plan.targets}
        commands = timed_commands(harness, plan.targets[0])  # busybox: the same paths on every platform
        for round_ in range(args.rounds):
            print(f"round {round_ + 1}/{args.rounds}: harness run, then hyperfine", file=sys.stderr)
            plats = harness_run(work)
            times, cli = hyperfine(containers, commands, args.runs, work)
            cli_times.append(cli)
            native = times["linux/amd64"]
            for platform in PLATFORMS:
                mine = times[platform]
                reported[platform].append(plats[platform]["slowdown"])
                raw[platform].append(geomean([mine[c] / native[c] for c in commands]))
                measured[platform].append(geomean([(mine[c] - cli) / (native[c] - cli) for c in commands]))
    rows, worst = [], 0.0
    for platform in PLATFORMS:
        ours, theirs, as_is = geomean(reported[platform]), geomean(measured[platform]), geomean(raw[platform])
        off, off_raw = ours / theirs - 1, ours / as_is - 1
        worst = max(worst, abs(off))
        mode = "native" if platform == "linux/amd64" else "emulated"
        ok = "yes" if abs(off) <= TOLERANCE else "NO"
        rows.append(
            [platform, mode, f"{ours:.2f}x", f"{as_is:.2f}x ({off_raw:+.0%})", f"{theirs:.2f}x", f"{off:+.0%}", ok]
        )
    headers = ["platform", "mode", "harness", "hyperfine as measured", "hyperfine, CLI start-up out", "diff", "<=15%"]
    print(tabulate(rows, headers=headers))
    print(f"\nworst difference {worst:.0%} (target: within {TOLERANCE:.0%}); commands: {', '.join(commands)}")
    print(f"docker CLI start-up (hyperfine, `docker version`): {statistics.mean(cli_times) * 1000:.1f} ms")
    print(f"{args.rounds} rounds; hyperfine: {args.runs} runs per command after 2 warm-up runs, docker exec")
    return 0 if worst <= TOLERANCE else 1


if __name__ == "__main__":
    sys.exit(main())
