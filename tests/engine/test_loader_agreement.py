"""The static library resolution (harness.loader) against the real loader, file by file.

For every platform of samples/debian, samples/debian-defects and samples/debian-abi, every
dynamic ELF file with DT_NEEDED entries that the platform's containers can exec (its own
machine, and the 32-bit compat code Debian ships beside it: i386 in amd64, armhf in arm64),
and whose loader is in the image, is listed by that loader inside one container of the
platform's own manifest, pulled by digest: ``LOADER --list FILE``. Each need's answer,
the file it resolved to or "not found", must be the static resolver's, for every file.

How the loader's answers are read:

- ``ld.so --list`` of glibc 2.36 stops at the first library it cannot find: it prints
  "error while loading shared libraries: NAME: cannot open shared object file" and exits
  127, listing nothing. That file is then listed again in trace mode, as ldd does
  (``LD_TRACE_LOADED_OBJECTS=1 LOADER FILE``), which prints every need, the missing ones as
  ``NAME => not found``; that list is the loader's answer, and NAME must be among its
  missing ones. An exit that is not 0 is accepted only where the static side also finds
  something missing (a library, or a symbol version); elsewhere it is a disagreement.
- Paths are mapped to the file they are with ``readlink -f``, in the same container, once
  for all the paths the loader printed: the symlinks are followed in the filesystem the
  engine assembled from the layers, so a mistake of harness.layers (whose ``fs.resolve``
  the static side follows them with) cannot hide behind the same mistake on this side; and
  it is one exec, where a ``readlink`` per path would cost a process start each under QEMU.
- Lines without ``=>`` (linux-vdso, the loader itself) are left out, as is a ``=>`` line
  that leads to the loader; "version `V' not found (required by X)" messages are compared
  with the static side's symbol version problems; any other message is a disagreement.

Each image/platform pair runs in a container of its own, even where the three images share
their root layers: a top layer changes what the loader finds for files it does not touch
(debian-abi's whiteout of libssl.so.3 on ppc64le). Two pairs run at once, each one
``docker exec`` of a script that loops over all its files, because a process start under
QEMU is slow; the whole file takes about 80 s here. The containers carry the harness's
labels and are removed on failure and on Ctrl-C too. The per-platform table goes to the
terminal, to this test's report section and to reports/loader-agreement.txt.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field

import docker
import pytest
from enginekit import DEBIAN_PLATFORMS, TOP, sample_refs

from harness import Harness
from harness.arch import spec_for
from harness.container import KEEPALIVE_SECONDS
from harness.execio import exec_output
from harness.labels import LABEL_SESSION
from harness.loader import Closure, Resolver
from harness.planner import Target
from harness.platform import Platform

pytestmark = pytest.mark.engine

IMAGES = ("debian", "debian-defects", "debian-abi")
#: 32-bit code a platform's containers also exec: (class, big endian, machine).
COMPAT = {"linux/amd64": {(32, False, 3)}, "linux/arm64": {(32, False, 40)}}
#: Image/platform pairs run at once: one QEMU process each, on a 2-core machine.
WORKERS = 2
REPORT = TOP / "reports" / "loader-agreement.txt"
EXEC_TIMEOUT = 600

MARK = "@@@"
#: One script for all of a pair's files; its arguments are LOADER FILE pairs.
SCRIPT = f"""
while [ $# -gt 1 ]; do
  l=$1 f=$2; shift 2
  printf '{MARK} file %s\\n' "$f"
  "$l" --list "$f" 2>&1; rc=$?
  printf '{MARK} rc %d\\n' "$rc"
  if [ "$rc" -ne 0 ]; then
    LD_TRACE_LOADED_OBJECTS=1 "$l" "$f" 2>&1
    printf '{MARK} trace rc %d\\n' "$?"
  fi
done
"""
FOUND = re.compile(r"\t(?P<name>.+?) => (?P<path>.+) \(0x[0-9a-f]+\)")
NOT_FOUND = re.compile(r"\t(?P<name>.+?) => not found")
VERSION = re.compile(
    r"(?:.*?: )?(?P<provider>[^:]+): version `(?P<version>[^']+)' not found \(required by (?P<needer>.+)\)"
)
CANNOT_OPEN = re.compile(r".*: error while loading shared libraries: (?P<name>.+?): cannot open shared object file.*")


@dataclass
class Listing:
    """What the loader printed for one file."""

    rc: int
    lines: list[str] = field(default_factory=list)
    trace_rc: int | None = None
    trace: list[str] = field(default_factory=list)


@dataclass
class Disagreement:
    file: str
    name: str
    static: str
    loader: str

    def __str__(self) -> str:
        return f"{self.file}: {self.name}: static {self.static}, loader {self.loader}"


@dataclass
class Pair:
    """One image on one platform: what was compared and how it came out."""

    image: str
    platform: str
    with_needs: int = 0
    other_machine: int = 0
    no_loader: int = 0
    files: int = 0
    files_agreeing: int = 0
    needs: int = 0
    needs_agreeing: int = 0
    versions: int = 0
    nonzero: int = 0
    seconds: float = 0.0
    disagreements: list[Disagreement] = field(default_factory=list)
    #: file -> {need: real path or None} as the loader said, and as the static side did.
    loader: dict[str, dict[str, str | None]] = field(default_factory=dict)
    static: dict[str, dict[str, str | None]] = field(default_factory=dict)
    #: file -> the loader it ran under.
    ran_by: dict[str, str] = field(default_factory=dict)
    #: Files with needs that were not run, and why.
    left_out: list[str] = field(default_factory=list)


def execable(platform: Platform) -> set[tuple[int, bool, int]]:
    spec = spec_for(platform)
    assert spec is not None, platform
    return {(spec.elf_class, spec.big_endian, spec.machine)} | COMPAT.get(str(platform), set())


def parse(stdout: str) -> dict[str, Listing]:
    out: dict[str, Listing] = {}
    current: Listing | None = None
    tracing = False
    for line in stdout.splitlines():
        if line.startswith(f"{MARK} file "):
            current = out[line[len(MARK) + 6 :]] = Listing(rc=-1)
            tracing = False
        elif current is None:
            raise AssertionError(f"output before the first file: {line!r}")
        elif line.startswith(f"{MARK} rc "):
            current.rc = int(line.split()[-1])
            tracing = True
        elif line.startswith(f"{MARK} trace rc "):
            current.trace_rc = int(line.split()[-1])
        elif tracing:
            current.trace.append(line)
        else:
            current.lines.append(line)
    return out


def printed_paths(listing: Listing) -> set[str]:
    paths = set()
    for line in listing.lines + listing.trace:
        if m := FOUND.fullmatch(line):
            paths.add(m["path"])
        elif m := VERSION.fullmatch(line):
            paths |= {m["provider"], m["needer"]}
    return paths


def compare(pair: Pair, path: str, closure: Closure, listing: Listing, real: dict[str, str], loader_real: str) -> None:
    """One file: every need's answer, the symbol version problems, the exit status."""
    said = listing.trace if listing.rc != 0 else listing.lines
    loader_side: dict[str, str | None] = {}
    loader_versions: set[tuple[str, str, str]] = set()
    messages: list[str] = []
    twice = []
    for line in said:
        if m := FOUND.fullmatch(line):
            target = real[m["path"]]
            if target != loader_real:
                if m["name"] in loader_side and loader_side[m["name"]] != target:
                    twice.append(m["name"])
                loader_side[m["name"]] = target
        elif m := NOT_FOUND.fullmatch(line):
            loader_side[m["name"]] = None
        elif m := VERSION.fullmatch(line):
            loader_versions.add((real[m["needer"]], m["version"], real[m["provider"]]))
        elif not line.startswith("\t"):
            messages.append(line)
    static_side = closure.resolution()
    static_versions = {(v.needer, v.version, v.provider) for v in closure.versions}
    pair.static[path] = static_side
    pair.loader[path] = loader_side
    wrong = [Disagreement(path, name, "-", "listed twice, as two files") for name in twice]
    for name in sorted(static_side.keys() | loader_side.keys()):
        s = static_side.get(name, "(not listed)")
        ld = loader_side.get(name, "(not listed)")
        pair.needs += 1
        if s == ld:
            pair.needs_agreeing += 1
        else:
            wrong.append(Disagreement(path, name, str(s or "not found"), str(ld or "not found")))
    for needer, version, provider in sorted(static_versions ^ loader_versions):
        wrong.append(
            Disagreement(
                path,
                f"version {version} of {provider} (needed by {needer})",
                "missing" if (needer, version, provider) in static_versions else "present",
                "missing" if (needer, version, provider) in loader_versions else "present",
            )
        )
    pair.versions += len(static_versions | loader_versions)
    if listing.rc != 0:
        pair.nonzero += 1
        first = "; ".join(listing.lines) or "(nothing)"
        if not closure.missing and not closure.versions:
            wrong.append(Disagreement(path, "(exit status)", "nothing missing", f"--list exit {listing.rc}: {first}"))
        # The library --list could not open must be one its trace says is not found, or
        # the trace is not the answer --list would have given.
        for name in (m["name"] for line in listing.lines if (m := CANNOT_OPEN.fullmatch(line))):
            if loader_side.get(name, "") is not None:
                traced = loader_side.get(name, "(not listed)")
                wrong.append(Disagreement(path, name, "-", f"--list cannot open it, its trace says {traced}"))
        if listing.trace_rc not in (0, None) and not messages:
            messages.append(f"trace exit {listing.trace_rc}")
    for message in messages:
        wrong.append(Disagreement(path, "(message)", "-", message))
    pair.files += 1
    if wrong:
        pair.disagreements += wrong
    else:
        pair.files_agreeing += 1


def run_pair(h: Harness, target: Target, stop: threading.Event) -> Pair:
    """List every file of one image/platform in one container of it, and compare."""
    start = time.monotonic()
    pair = Pair(target.image.split("/samples/", 1)[1].split(":")[0], str(target.platform))
    fs = h.filesystem(target)
    resolver = Resolver(fs, h.config(target).env)
    kinds = execable(target.platform)
    todo: list[tuple[str, str, Closure]] = []  # path, loader, static closure
    for path, node in fs.elf_files():
        info = node.elf
        if info is None or info.dynamic is None or not info.dynamic.needed:
            continue
        pair.with_needs += 1
        if (info.elf_class, info.big_endian, info.machine) not in kinds:
            pair.other_machine += 1
            pair.left_out.append(f"{path}: {info.identity}, not a machine {pair.platform} execs")
            continue
        loader = resolver.loader_for(info)
        if loader is None or loader.real is None:
            pair.no_loader += 1
            pair.left_out.append(f"{path}: its loader {loader.path if loader else '(none)'} is not in the image")
            continue
        closure = resolver.closure(path)
        assert closure.loader is not None, path
        assert closure.loader.path == loader.path, path
        todo.append((path, loader.path, closure))
    assert todo, f"{pair.image} {pair.platform}: nothing to compare"

    client = docker.DockerClient(base_url=h.engine.base_url, timeout=EXEC_TIMEOUT)
    container = None
    try:
        if stop.is_set():
            raise RuntimeError("stopped")
        pinned = h.planner.pinned(target)
        h.engine.pull(pinned)
        sleep = h.which(target, "sleep")
        bash = h.which(target, "bash")
        readlink = h.which(target, "readlink")
        assert sleep, f"{pinned}: no sleep on its PATH"
        assert bash, f"{pinned}: no bash on its PATH"
        assert readlink, f"{pinned}: no readlink on its PATH"
        labels = h.pool.labels(target)
        container = client.containers.create(
            pinned,
            entrypoint=[sleep, KEEPALIVE_SECONDS],
            platform=str(target.platform),
            labels=labels,
            environment=dict(target.mode.env),
            network_mode="none",
        )
        container.start()
        if stop.is_set():
            raise RuntimeError("stopped")

        def run(argv: list[str]) -> tuple[int, str, str]:
            exec_id = client.api.exec_create(container.id, argv)["Id"]
            out, err = exec_output(client.api, exec_id)
            rc = client.api.exec_inspect(exec_id)["ExitCode"]
            return rc, (out or b"").decode("utf-8", "replace"), (err or b"").decode("utf-8", "replace")

        args = [arg for path, rtld, _ in todo for arg in (rtld, path)]
        rc, out, err = run([bash, "-c", SCRIPT, "loader-agreement", *args])
        assert rc == 0, f"{pinned}: the script exited {rc}: {err[-2000:]}"
        assert not err, f"{pinned}: the script said on stderr: {err[-2000:]}"
        listings = parse(out)
        assert sorted(listings) == sorted(p for p, _, _ in todo), f"{pinned}: files listed are not the files asked"
        wanted = sorted(set().union(*(printed_paths(x) for x in listings.values())) | {ld for _, ld, _ in todo})
        rc, out, err = run([readlink, "-f", "--", *wanted])
        reals = out.splitlines()
        assert rc == 0, f"{pinned}: readlink -f exited {rc}: {err[-2000:]}"
        assert len(reals) == len(wanted), f"{pinned}: readlink -f gave {len(reals)} paths for {len(wanted)}"
        real = dict(zip(wanted, reals, strict=True))
    finally:
        if container is not None:
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True)
        client.close()
    for path, rtld, closure in todo:
        pair.ran_by[path] = rtld
        compare(pair, path, closure, listings[path], real, real[rtld])
    pair.seconds = time.monotonic() - start
    return pair


def remove_session(client: docker.DockerClient, session: str) -> None:
    for c in client.api.containers(all=True, filters={"label": f"{LABEL_SESSION}={session}"}):
        with contextlib.suppress(docker.errors.NotFound):
            client.api.remove_container(c["Id"], force=True)


HEAD = (
    "image", "platform", "ELF+needs", "other machine", "no loader", "files", "files agree",
    "needs", "needs agree", "versions", "exit!=0", "s",
)  # fmt: skip


def columns(rows: list[tuple]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(HEAD, *rows, strict=True)]
    return "\n".join(
        "  ".join(str(x).ljust(w) if i < 2 else str(x).rjust(w) for i, (x, w) in enumerate(zip(r, widths, strict=True)))
        for r in (HEAD, *rows)
    )


def counts(p: Pair) -> tuple[int, ...]:
    return (
        p.with_needs, p.other_machine, p.no_loader, p.files, p.files_agreeing,
        p.needs, p.needs_agreeing, p.versions, p.nonzero,
    )  # fmt: skip


def table(pairs: list[Pair], wall: float) -> str:
    """One row per image and platform; then per platform, the three images summed."""
    rows = [(p.image, p.platform, *counts(p), f"{p.seconds:.1f}") for p in pairs]
    summed = lambda group: tuple(sum(c) for c in zip(*(counts(p) for p in group), strict=True))  # noqa: E731
    platforms = list(dict.fromkeys(p.platform for p in pairs))
    by_platform = []
    for plat in platforms:
        group = [p for p in pairs if p.platform == plat]
        by_platform.append(("all 3", plat, *summed(group), f"{sum(p.seconds for p in group):.1f}"))
    total = ("total", "", *summed(pairs), f"{wall:.1f} wall")
    return columns(rows) + "\n\n" + columns([*by_platform, total])


@pytest.fixture(scope="module")
def agreement(registry: str, engine: docker.DockerClient) -> dict:
    refs = sample_refs(registry, IMAGES)
    session = f"loader-agreement-{uuid.uuid4().hex[:8]}"
    start = time.monotonic()
    pairs: list[Pair] = []
    with Harness(",".join(DEBIAN_PLATFORMS), session_id=session) as h:
        targets = [t for name in IMAGES for t in h.plan(refs[name]).targets]
        assert len(targets) == len(IMAGES) * len(DEBIAN_PLATFORMS), [str(t.platform) for t in targets]
        # The slowest first: the most files under emulation.
        targets.sort(key=lambda t: (not t.mode.emulated, -len(h.filesystem(t).elf_files())))
        stop = threading.Event()
        pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="loader-agreement")
        try:
            futures = [pool.submit(run_pair, h, t, stop) for t in targets]
            for done in as_completed(futures):
                pairs.append(done.result())
        except BaseException:
            # Ctrl-C or a failed pair: start nothing more, and take the running containers
            # away, which ends their execs at once.
            stop.set()
            pool.shutdown(wait=False, cancel_futures=True)
            remove_session(engine, session)
            raise
        finally:
            pool.shutdown(wait=True)
            remove_session(engine, session)
    order = {(r, str(p)): i for i, (r, p) in enumerate((n, p) for n in IMAGES for p in DEBIAN_PLATFORMS)}
    pairs.sort(key=lambda p: order[p.image, p.platform])
    wall = time.monotonic() - start
    # Only this run's: other runs on this engine may have containers of their own.
    left = {c["Id"] for c in engine.api.containers(all=True, filters={"label": f"{LABEL_SESSION}={session}"})}
    return {"pairs": {(p.image, p.platform): p for p in pairs}, "wall": wall, "table": table(pairs, wall), "left": left}


def test_every_need_resolves_where_the_loader_finds_it(agreement, request, capsys):
    pairs: dict[tuple[str, str], Pair] = agreement["pairs"]
    text = agreement["table"]
    wrong = [d for p in pairs.values() for d in p.disagreements]
    left_out = [f"{p.image} {p.platform}: {x}" for p in pairs.values() for x in p.left_out]
    listed = [f"{p.image} {p.platform}: {d}" for p in pairs.values() for d in p.disagreements]
    report = "\n\n".join(
        [
            text,
            "not run (the static side skips them too):\n" + "\n".join(left_out or ["none"]),
            f"{len(wrong)} disagreements:\n" + "\n".join(listed) if wrong else "no disagreement",
        ]
    )
    REPORT.parent.mkdir(exist_ok=True)
    REPORT.write_text(report + "\n")
    request.node.add_report_section("call", "loader agreement", report)
    with capsys.disabled():
        print(f"\n\nstatic resolution against the loader, per image and platform (also in {REPORT}):\n{text}")
    assert not agreement["left"], f"containers left behind: {sorted(agreement['left'])}"
    shown = "\n".join(f"  {p.image} {p.platform}: {d}" for p in pairs.values() for d in p.disagreements[:40])
    assert not wrong, f"{len(wrong)} disagreements with the loader (file: need: static, loader):\n{shown}\n\n{text}"


def test_the_comparison_reaches_the_compat_code_and_the_defects(agreement):
    """What the comparison covers: not only libc.so.6 found where it always is."""
    pairs: dict[tuple[str, str], Pair] = agreement["pairs"]
    for (image, platform), p in pairs.items():
        assert p.files > 400, (image, platform, p.files)
        assert p.no_loader == 0, (image, platform)
        compat = {"linux/amd64": "/lib/ld-linux.so.2", "linux/arm64": "/lib/ld-linux-armhf.so.3"}.get(platform)
        if compat is not None:  # Debian's 32-bit libraries, run by their own loader
            assert sum(ld == compat for ld in p.ran_by.values()) > 250, (image, platform)
    # debian-defects, arm64: amd64's libssl.so.3 is skipped, so libssl.so.3 is missing;
    # the file itself, and python3-yaml's x86-64 extension, are not arm64's to run.
    defects = pairs["debian-defects", "linux/arm64"]
    assert defects.other_machine == 2
    for side in (defects.static, defects.loader):
        assert side["/usr/bin/openssl"]["libssl.so.3"] is None
        assert side["/usr/bin/openssl"]["libcrypto.so.3"] == "/usr/lib/aarch64-linux-gnu/libcrypto.so.3"
    # debian-abi, ppc64le: a whiteout removed libssl.so.3.
    abi = pairs["debian-abi", "linux/ppc64le"]
    for side in (abi.static, abi.loader):
        assert side["/usr/bin/curl"]["libssl.so.3"] is None
    assert pairs["debian", "linux/ppc64le"].loader["/usr/bin/curl"]["libssl.so.3"] == (
        "/usr/lib/powerpc64le-linux-gnu/libssl.so.3"
    )
    # debian-abi, s390x: trixie's tree needs GLIBC_2.38; both sides say so, or the test above fails.
    assert pairs["debian-abi", "linux/s390x"].versions >= 1
