"""What asking an engine costs a run: the survey (harness.survey) and the exec-cost
calibration the slowdown figures rest on, per engine, side by side in one run.

    .venv/bin/python bench/engine_probe.py [--reps 5] [--engine URL ...]

For each engine (by default every one that answers of: this machine's docker, podman, the
trixie engine, the arm64 VM), in rounds that alternate between engines:

- ``cold``: the probe image is not in the engine (removed first): load it, start one
  container, exec one program per architecture of the sample run's twelve platforms, read
  the process list, remove the container;
- ``warm``: the same with the image already there (every run after the first);
  (both include the three execs of a program that exits at once, which measure what an
  exec costs there: what command times are measured without);
- for scale, ``1 container``: starting and removing one container of the probe image,
  the least any question to the engine that runs something costs.

Target (issue 14): probing adds at most 1 s per engine to a run on this machine: the
medians of ``cold`` (a run on a fresh machine) and ``warm`` against 1 s.
An engine in a VM is reported too, with no target: everything there runs under the VM's
emulation.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from tabulate import tabulate

TOP = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TOP))

import docker  # noqa: E402

from harness.engine import EngineError  # noqa: E402
from harness.platform import Platform, parse_list  # noqa: E402
from harness.survey import PROBE_REPO, probe_archive, run_survey  # noqa: E402

PLATFORMS = [
    line.split("#", 1)[0].split()[0]
    for line in (TOP / "sample_images" / "platforms.txt").read_text().splitlines()
    if line.split("#", 1)[0].strip()
]
ENGINES = {
    "docker (bookworm)": "unix:///var/run/docker.sock",
    "podman": "unix:///run/multiarch-podman.sock",
    "docker (trixie, containerd store)": "unix:///run/multiarch-trixie/docker.sock",
    "arm64 VM": "unix:///run/multiarch-arm64.sock",
}
TARGET_S = 1.0
LABELS = {"io.multiarch-harness.bench": "engine-probe"}


def answering(url: str) -> docker.DockerClient | None:
    try:
        client = docker.DockerClient(base_url=url, timeout=300)
        client.ping()
        return client
    except docker.errors.DockerException:
        return None


def drop_probe_images(client: docker.DockerClient) -> None:
    for image in client.images.list(name=PROBE_REPO):
        client.images.remove(image.id, force=True)


def families() -> list[str]:
    return sorted({p.architecture for p in parse_list(",".join(PLATFORMS))})


def timed_survey(client: docker.DockerClient, url: str) -> float:
    """A run's engine has asked ``docker version`` already (for its platform): not timed."""
    version = client.version()
    start = time.perf_counter()
    found = run_survey(client, url, families(), LABELS, version=version)
    took = time.perf_counter() - start
    if found.error:
        raise EngineError(f"{url}: {found.error}")
    return took


def timed_start(client: docker.DockerClient, url: str) -> float:
    version = client.version()
    tag, _ = probe_archive(Platform.normalized(str(version["Os"]), str(version["Arch"])).architecture)
    start = time.perf_counter()
    container = client.containers.run(tag, detach=True, network_mode="none", labels=LABELS)
    container.remove(force=True)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--engine", action="append", default=[], help="engine URL (default: every known one)")
    args = parser.parse_args()
    wanted = {url: url for url in args.engine} if args.engine else ENGINES
    clients = {name: (url, c) for name, url in wanted.items() if (c := answering(url)) is not None}
    for name in wanted:
        if name not in clients:
            print(f"{name}: not answering, left out")
    times: dict[str, dict[str, list[float]]] = {n: {"cold": [], "warm": [], "start": []} for n in clients}
    for rep in range(args.reps):
        for name, (url, client) in clients.items():
            drop_probe_images(client)
            times[name]["cold"].append(timed_survey(client, url))
            times[name]["warm"].append(timed_survey(client, url))
            times[name]["start"].append(timed_start(client, url))
        print(f"round {rep + 1} of {args.reps} done", file=sys.stderr)
    rows = []
    failed = False
    for name, t in times.items():
        med = {k: statistics.median(v) for k, v in t.items()}
        first, later = med["cold"], med["warm"]
        local = "VM" not in name
        ok = first <= TARGET_S and later <= TARGET_S
        failed |= local and not ok
        rows.append(
            [
                name,
                f"{med['cold']:.2f}",
                f"{med['warm']:.2f}",
                f"{med['start']:.2f}",
                f"{later / med['start']:.1f}x",
                (f"<= {TARGET_S:g} s: " + ("met" if ok else "MISSED")) if local else "(no target: emulated VM)",
            ]
        )
    print(f"engine probing, {len(families())} architectures ({', '.join(families())}), median of {args.reps} rounds, s")
    print(
        tabulate(
            rows,
            ["engine", "survey cold", "survey warm", "1 container", "warm / 1 container", "target"],
        )
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
