"""What an engine can run, found by running something in it.

The engine may be on this machine, in a VM (Docker Desktop on a Mac: an arm64 Linux VM
that emulates amd64 itself, with QEMU or Rosetta) or on another host; its kernel, and the
emulators registered in that kernel's binfmt_misc, are the ones that decide. So the
harness asks the engine: it loads a tiny image of its own (:mod:`harness.tinyelf`: one
static program per architecture, each waiting in a system call), starts one container of
the engine's own platform, starts every other program in it by ``exec``, and reads the
engine's own process list (``docker top``, the engine host's ``ps``). A program the
kernel handed to an emulator shows the emulator first on its command line
(``/usr/libexec/qemu-binfmt/aarch64-binfmt-P /probe/arm64``, ``/run/rosetta/rosetta
/probe/amd64``); one it ran itself shows only itself; one it refused left the engine's
error (``exec format error``).

The engine shares this machine's kernel only when the container's first process, looked
up by the PID the engine gives, is in this machine's ``/proc`` with the random word it was
started with: then this machine's binfmt_misc is the engine's too, and is listed.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import hashlib
import io
import json
import os
import secrets
import statistics
import tarfile
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from . import binfmt
from .cgroups import cgroup_cpu_file, read_cpu_seconds
from .execio import exec_output
from .platform import Platform
from .tinyelf import EXITS, PROGRAMS

NATIVE = "native"
EMULATED = "emulated"
UNAVAILABLE = "unavailable"

#: The name the probe image is loaded under; the tag is a hash of its content.
PROBE_REPO = "multiarch-harness/probe"
#: Where the programs are in the probe image.
PROBE_DIR = "/probe"
#: How long a probe program may take to start (an emulator under a VM's own emulation is slow).
START_TIMEOUT = 60.0
#: Execs of the program that exits at once, whose median is what an exec costs.
EXEC_COST_RUNS = 3

#: The architectures a kernel of each architecture runs itself (x86-64 runs i386 code,
#: arm64 runs AArch32 code where the CPU has it, a MIPS64 kernel runs o32).
_RUNS_ITSELF = {
    "amd64": ("amd64", "386"),
    "arm64": ("arm64", "arm"),
    "mips64le": ("mips64le", "mipsle"),
    "mips64": ("mips64", "mips"),
}

_FIX_EMULATOR = (
    "register one in the engine's kernel: on a Debian or Ubuntu engine host (or VM), "
    "`apt-get install qemu-user-static binfmt-support`; elsewhere "
    "`docker run --privileged --rm tonistiigi/binfmt --install all`"
)


@dataclass(frozen=True)
class FamilyRun:
    """What the engine did with one architecture's program."""

    family: str
    kind: str  # NATIVE, EMULATED or UNAVAILABLE
    #: Who emulates it ("QEMU", "Rosetta", ...), for EMULATED.
    emulator: str = ""
    #: The interpreter the engine's process list showed, for EMULATED.
    interpreter: str = ""
    #: What the engine said, for UNAVAILABLE; and the fix.
    error: str = ""

    @property
    def reason(self) -> str:
        if self.kind == NATIVE:
            return f"the engine's kernel ran the {self.family} probe itself"
        if self.kind == EMULATED:
            how = f"{self.emulator} ({self.interpreter})" if self.interpreter else self.emulator
            return f"{how}, seen running the {self.family} probe in the engine"
        return self.error


@dataclass(frozen=True)
class Survey:
    """One engine: what it is, and what it did with each probe program."""

    engine: str
    version: str = ""
    #: The engine's own platform, and its kernel's ``uname -m`` and release.
    platform: str = ""
    kernel_arch: str = ""
    kernel: str = ""
    operating_system: str = ""
    #: The image store: "overlay2" (classic) or "containerd (overlayfs)", say.
    store: str = ""
    #: The engine runs on this machine's kernel (proven, see the module's docs).
    this_kernel: bool = False
    #: The emulators found: this machine's binfmt_misc handlers when it is the engine's
    #: kernel, else the interpreters seen running the probes.
    emulators: tuple[str, ...] = ()
    runs: dict[str, FamilyRun] = field(default_factory=dict)
    #: What an exec of a program that does nothing costs there: wall seconds, and the
    #: container's CPU seconds (None unless the engine runs on this machine's kernel).
    exec_wall_s: float | None = None
    exec_cpu_s: float | None = None
    seconds: float = 0.0
    #: Why the survey could not run at all (then ``runs`` is empty).
    error: str = ""
    #: For an answer taken from the cache (:func:`cache_key`): when it was asked, UTC.
    asked_at: str = ""

    @property
    def containerd_store(self) -> bool:
        return self.store.startswith("containerd")

    def describe(self) -> str:
        if self.error and not self.platform:
            return f"{self.engine}: not surveyed ({self.error})"
        kernel = f"kernel {self.kernel_arch} {self.kernel}".rstrip()
        where = "this machine's kernel" if self.this_kernel else "not this machine's kernel"
        emus = _grouped(self.emulators) if self.emulators else "none found"
        return f"{self.platform}, {kernel} ({where}), {self.operating_system}, store {self.store}; emulators: {emus}"

    def modes_line(self) -> str:
        """``native amd64 386; emulated (QEMU) arm64 arm; unavailable riscv64``."""
        groups: dict[str, list[str]] = {}
        for run in self.runs.values():
            key = f"{run.kind} ({run.emulator})" if run.kind == EMULATED and run.emulator else run.kind
            groups.setdefault(key, []).append(run.family)
        order = sorted(groups, key=lambda k: (not k.startswith(NATIVE), not k.startswith(EMULATED), k))
        found = "; ".join(f"{k} {' '.join(groups[k])}" for k in order)
        if not found:
            return ""
        if self.asked_at:
            return f"{found} (as asked at {self.asked_at}: the engine, its kernel and binfmt_misc unchanged since)"
        return f"{found} (asked in {self.seconds:.2f}s)"

    def to_data(self) -> dict[str, Any]:
        data = asdict(self)
        data["emulators"] = list(self.emulators)
        return data

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> Survey:
        runs = {k: FamilyRun(**v) for k, v in dict(data.get("runs") or {}).items()}
        return cls(**{**data, "runs": runs, "emulators": tuple(data.get("emulators") or ())})


def _grouped(emulators: Sequence[str]) -> str:
    """``qemu-arm (QEMU, PF), qemu-ppc64le (QEMU, PF)`` -> ``QEMU x2 (flags PF)``, where
    more than three handlers share an emulator and flags."""
    groups: dict[str, list[str]] = {}
    for item in emulators:
        name, _, rest = item.partition(" (")
        groups.setdefault(rest.rstrip(")"), []).append(name)
    out = []
    for key, names in groups.items():
        emulator, _, flags = key.partition(", ")
        if len(names) > 3:
            out.append(f"{emulator} x{len(names)} (binfmt_misc, flags {flags})")
        else:
            out += [f"{n} ({key})" for n in names]
    return ", ".join(out)


# --- reading what the engine showed ------------------------------------------------------------
def emulator_name(interpreter: str) -> str:
    """Who an interpreter path is: QEMU, Rosetta, or its file name."""
    low = interpreter.lower()
    name = low.rsplit("/", 1)[-1]
    if "rosetta" in low:
        return "Rosetta"
    if "qemu" in low:
        return "QEMU"
    if name.startswith(("box64", "box86")):
        return name.split("-")[0]
    if "fex" in name:
        return "FEX"
    return interpreter.rsplit("/", 1)[-1]


def command_column(top: Mapping[str, Any]) -> int:
    """Which column of ``docker top``'s answer is the full command line."""
    titles = [str(t).upper() for t in top.get("Titles") or ()]
    for name in ("CMD", "COMMAND", "ARGS"):
        if name in titles:
            return titles.index(name)
    return len(titles) - 1


def _pid_column(top: Mapping[str, Any]) -> int | None:
    titles = [str(t).upper() for t in top.get("Titles") or ()]
    return titles.index("PID") if "PID" in titles else None


def read_top(top: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    """Probe family -> (interpreter or "", PID) from ``docker top``'s answer."""
    col, pid_col = command_column(top), _pid_column(top)
    out: dict[str, tuple[str, str]] = {}
    for row in top.get("Processes") or ():
        if col >= len(row):
            continue
        words = str(row[col]).split()
        pid = str(row[pid_col]) if pid_col is not None and pid_col < len(row) else ""
        # The program itself, or the interpreter binfmt_misc put in front of it (argv[0]).
        for i, word in enumerate(words[:2]):
            family = word[len(PROBE_DIR) + 1 :] if word.startswith(PROBE_DIR + "/") else ""
            if family in PROGRAMS and family not in out:
                out[family] = (" ".join(words[:i]), pid)
                break
    return out


def runs_itself(engine_family: str, family: str) -> bool:
    return family in _RUNS_ITSELF.get(engine_family, (engine_family,))


def judge(family: str, engine_family: str, seen: tuple[str, str] | None, error: str) -> FamilyRun:
    """What one program's run says: ``seen`` is (interpreter, pid) when it was running,
    ``error`` what the engine said when it was not."""
    if seen is not None:
        interpreter = seen[0]
        if interpreter:
            return FamilyRun(family, EMULATED, emulator_name(interpreter), interpreter)
        if runs_itself(engine_family, family):
            return FamilyRun(family, NATIVE)
        # A kernel of another architecture ran it with nothing in front: an emulator that
        # hides itself from the process list.
        return FamilyRun(family, EMULATED, "an emulator that did not show itself")
    return FamilyRun(family, UNAVAILABLE, error=unavailable_reason(family, engine_family, error))


def unavailable_reason(family: str, engine_family: str, error: str) -> str:
    said = " ".join(error.split()) or "the probe did not start"
    low = said.lower()
    if "exec format error" in low:
        if engine_family == "arm64" and family == "arm":
            return (
                "exec format error: this arm64 CPU has no AArch32 and no arm emulator is registered in the "
                f"engine's kernel; {_FIX_EMULATOR}"
            )
        return f"exec format error: no emulator for {family} is registered in the engine's kernel; {_FIX_EMULATOR}"
    if "no such file" in low:
        return (
            f"{said}: the engine's kernel hands {family} programs to an emulator that containers cannot open "
            "(its binfmt_misc handler lacks the F flag); re-register it with F (Debian's qemu-user-static "
            "does so)"
        )
    return f"the {family} probe did not run: {said}"


def store_of(info: Mapping[str, Any]) -> str:
    """The image store ``docker info`` describes."""
    status = {str(k): str(v) for k, v in (info.get("DriverStatus") or []) if k is not None}
    driver = str(info.get("Driver") or "?")
    if status.get("driver-type", "").startswith("io.containerd.snapshotter"):
        return f"containerd ({driver})"
    return driver


def local_emulators(handlers: Iterable[binfmt.Handler]) -> tuple[str, ...]:
    """This machine's enabled ELF handlers: ``qemu-aarch64 (QEMU, F)``."""
    out = []
    for h in handlers:
        if h.enabled and h.magic.startswith(b"\x7fELF"):
            out.append(f"{h.name} ({emulator_name(h.interpreter)}, {h.flags or 'no flags'})")
    return tuple(out)


# --- the probe image ------------------------------------------------------------------------
def _tar(members: Sequence[tuple[str, bytes, int]]) -> bytes:
    """A reproducible tar: fixed times and owners."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data, mode in members:
            info = tarfile.TarInfo(name)
            info.mtime, info.uid, info.gid = 0, 0, 0
            if name.endswith("/"):
                info.type, info.mode = tarfile.DIRTYPE, mode
                tar.addfile(info)
            else:
                info.size, info.mode = len(data), mode
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@functools.lru_cache(maxsize=4)
def probe_archive(native: str) -> tuple[str, bytes]:
    """(tag, ``docker load`` archive) of the probe image for an engine of ``native``."""
    layer = _tar(
        [(PROBE_DIR.lstrip("/") + "/", b"", 0o755)]
        + [(f"{PROBE_DIR.lstrip('/')}/{fam}", prog.elf(), 0o755) for fam, prog in sorted(PROGRAMS.items())]
        + [(f"{PROBE_DIR.lstrip('/')}/{fam}.exit", prog.elf(), 0o755) for fam, prog in sorted(EXITS.items())]
    )
    diff_id = hashlib.sha256(layer).hexdigest()
    config = json.dumps(
        {
            "architecture": native,
            "os": "linux",
            "config": {"Cmd": [f"{PROBE_DIR}/{native}"]},
            "rootfs": {"type": "layers", "diff_ids": [f"sha256:{diff_id}"]},
        },
        sort_keys=True,
    ).encode()
    config_id = hashlib.sha256(config).hexdigest()
    tag = f"{PROBE_REPO}:{config_id[:16]}"
    manifest = json.dumps([{"Config": f"{config_id}.json", "RepoTags": [tag], "Layers": [f"{diff_id}/layer.tar"]}])
    archive = _tar(
        [
            (f"{config_id}.json", config, 0o644),
            (f"{diff_id}/layer.tar", layer, 0o644),
            ("manifest.json", manifest.encode(), 0o644),
        ]
    )
    return tag, archive


# --- answers kept between runs ----------------------------------------------------------------
#: Changed whenever what a survey finds, or how it asks, changes: earlier answers go unused.
CACHE_FORMAT = 1
#: What of ``docker info`` a survey's answer depends on (the counts and clocks change by the minute).
_INFO_KEYS = (
    "ID",
    "Name",
    "KernelVersion",
    "OperatingSystem",
    "Architecture",
    "Driver",
    "DefaultRuntime",
    "Runtimes",
    "SecurityOptions",
    "CgroupDriver",
    "CgroupVersion",
    "DockerRootDir",
    "Isolation",
)


def cache_key(
    base_url: str, info: Mapping[str, Any], version: Mapping[str, Any], proc: Path = Path("/proc")
) -> str | None:
    """What a survey of an engine on this machine's kernel depends on, as one digest: the
    engine (its ID, version, runtimes, store), this boot of this kernel, every binfmt_misc
    handler as the kernel shows it and the emulator file each names, and the probe
    programs. An answer kept under it holds while the digest is the same: a handler
    registered, removed, disabled or reinstalled, a reboot, another engine or runtime,
    each changes it. None when the engine gives no ID, or this kernel cannot be read."""
    engine_id = str(info.get("ID") or "")
    if not engine_id:
        return None
    try:
        boot = (proc / "sys/kernel/random/boot_id").read_text().strip()
        entries = sorted((proc / "sys/fs/binfmt_misc").iterdir())
    except OSError:
        return None
    handlers: list[tuple[str, str, list[int]]] = []
    for entry in entries:
        try:
            text = entry.read_text()
        except OSError:
            continue
        stamp: list[int] = []
        for line in text.splitlines():
            if line.startswith("interpreter "):
                with contextlib.suppress(OSError):
                    st = os.stat(line.split(" ", 1)[1].strip())
                    stamp = [st.st_ino, st.st_size, st.st_mtime_ns]
        handlers.append((entry.name, text, stamp))
    native = Platform.normalized(str(version.get("Os", "linux")), str(version.get("Arch", ""))).architecture
    material = {
        "format": CACHE_FORMAT,
        "engine": base_url,
        "info": {k: info.get(k) for k in _INFO_KEYS},
        "version": dict(version),
        "kernel": os.uname().release,
        "boot": boot,
        "binfmt_misc": handlers,
        "probe": probe_archive(native)[0] if native in PROGRAMS else "",
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()


def load_cached(folder: Path, key: str) -> Survey | None:
    """The answer kept under ``key``, or None (none kept, or unreadable: then asked anew)."""
    try:
        data = json.loads((folder / f"{key}.json").read_text())
        found = Survey.from_data(data["survey"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return found if found.this_kernel and not found.error and data.get("key") == key else None


def keep(folder: Path, key: str, found: Survey) -> None:
    """Keep an answer for the runs after this one: only a whole one, from an engine proven to
    be on this machine's kernel (whose binfmt_misc is then the key's). Best effort."""
    if not found.this_kernel or found.error:
        return
    asked = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    data = {"key": key, "survey": replace(found, asked_at=asked).to_data()}
    with contextlib.suppress(OSError):
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{key}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(data))
        tmp.replace(folder / f"{key}.json")


# --- asking the engine -------------------------------------------------------------------------
def run_survey(
    client: Any,
    base_url: str,
    families: Iterable[str],
    labels: Mapping[str, str],
    *,
    proc: Path = Path("/proc"),
    timeout: float = START_TIMEOUT,
    version: Mapping[str, Any] | None = None,
) -> Survey:
    """Ask the engine behind ``client`` how it runs each of ``families``. ``version`` is
    its ``docker version`` answer, when the caller has it already.

    Leaves nothing running: the probe container is removed before this returns (its
    labels let the harness's sweep find it if this process dies first). The probe image
    stays, so the next run only checks that it is there.
    """
    import docker.errors
    import requests

    start = time.perf_counter()
    try:
        info = client.info()
        version = version if version is not None else client.version()  # slow on podman: given when known
    except (docker.errors.DockerException, requests.RequestException) as exc:
        return Survey(base_url, error=f"the engine did not answer: {exc}")
    native = Platform.normalized(str(version.get("Os", "linux")), str(version.get("Arch", ""))).architecture
    base = Survey(
        base_url,
        version=str(version.get("Version", "?")),
        platform=str(Platform.normalized(str(version.get("Os", "linux")), str(version.get("Arch", "")))),
        kernel_arch=str(info.get("Architecture", "")),
        kernel=str(info.get("KernelVersion", "")),
        operating_system=str(info.get("OperatingSystem", "")),
        store=store_of(info),
    )
    if native not in PROGRAMS:
        return _done(base, start, error=f"the harness has no probe program for the engine's own {native}")
    wanted = sorted({f for f in families if f in PROGRAMS} - {native})
    container = None
    try:
        tag, archive = probe_archive(native)
        _load(client, tag, archive)
        nonce = secrets.token_hex(8)
        container = client.containers.run(
            tag,
            [f"{PROBE_DIR}/{native}", nonce],
            detach=True,
            network_mode="none",
            labels=dict(labels),
        )
        api = client.api

        def launch(family: str) -> tuple[str, str]:
            exec_id = api.exec_create(container.id, [f"{PROBE_DIR}/{family}"])["Id"]
            api.exec_start(exec_id, detach=True)
            return family, exec_id

        with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
            execs = dict(pool.map(launch, wanted))
        seen, ended, late = _settle(client, container.id, execs, timeout)
        errors = {f: _error_of(api, container.id, f) for f in ended}
        errors |= {f: f"the probe had not started after {timeout:.0f}s" for f in late}
        runs = {native: judge(native, native, seen.get(native, ("", "")), "")}
        for family in wanted:
            runs[family] = judge(family, native, seen.get(family), errors.get(family, ""))
        container.reload()  # for the PID the engine gave its first process
        pid = str((container.attrs.get("State") or {}).get("Pid", ""))
        this_kernel = _same_kernel(proc, pid, nonce)
        if this_kernel:
            emulators = local_emulators(binfmt.read_handlers(proc / "sys/fs/binfmt_misc"))
        else:
            emulators = tuple(sorted({f"{r.interpreter} ({r.emulator})" for r in runs.values() if r.interpreter}))
        cpu_file = cgroup_cpu_file(proc, pid) if this_kernel else None
        exec_cpu, exec_wall = _exec_cost(api, container.id, native, cpu_file)
        found = replace(
            base, this_kernel=this_kernel, emulators=emulators, runs=runs, exec_cpu_s=exec_cpu, exec_wall_s=exec_wall
        )
        return _done(found, start)
    except (docker.errors.DockerException, requests.RequestException, OSError) as exc:
        return _done(base, start, error=f"the probe container failed: {exc}")
    finally:
        if container is not None:
            # Not waited for (the answer is in), but this process does not exit before it is
            # gone; if it fails, the label sweep at the end of the run removes the container.
            threading.Thread(target=_remove, args=(container,), name="multiarch-survey-cleanup").start()


def _top(client: Any, container_id: str) -> dict[str, Any]:
    """``docker top``. Podman 4's Docker-compatible top answers with nothing; its own
    API streams the same table, one JSON document per line: the first is enough."""
    import docker.errors
    import requests

    # The engine runs the host's ps, which cuts command lines to COLUMNS when the daemon
    # has that in its environment: ask for whole lines first (procps: ww), then as is.
    for ps_args in ("-efww", None):
        try:
            answer = client.api.top(container_id, ps_args=ps_args)
            if isinstance(answer, dict):
                return answer
        except (docker.errors.DockerException, requests.RequestException, ValueError):
            pass
    api = client.api
    url = f"{api.base_url}/v{api.api_version}/libpod/containers/{container_id}/top"
    with api.get(url, stream=True, timeout=60) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if line.strip():
                return dict(json.loads(line))
    raise docker.errors.DockerException(f"the engine listed no processes of the probe container {container_id[:12]}")


def _load(client: Any, tag: str, archive: bytes) -> None:
    """Load the probe image unless the engine has it. Podman loads it, then answers in a
    form docker-py cannot read: what counts is that the image is there afterwards."""
    import docker.errors
    import requests

    try:
        client.images.get(tag)
        return
    except docker.errors.ImageNotFound:
        pass
    try:
        client.images.load(archive)
    except (docker.errors.DockerException, requests.RequestException, ValueError) as exc:
        try:
            client.images.get(tag)
        except docker.errors.ImageNotFound:
            raise docker.errors.DockerException(f"loading the probe image {tag}: {exc}") from exc


def _remove(container: Any) -> None:
    import docker.errors
    import requests

    with contextlib.suppress(docker.errors.DockerException, requests.RequestException):
        container.remove(force=True)


def _done(survey: Survey, start: float, error: str = "") -> Survey:
    return replace(survey, seconds=time.perf_counter() - start, error=error)


def _settle(
    client: Any, container_id: str, execs: Mapping[str, str], timeout: float
) -> tuple[dict[str, tuple[str, str]], list[str], list[str]]:
    """Wait until each program shows in the engine's process list or its exec has ended:
    (what the list showed, the families whose program ended, those still not started at
    the deadline). An engine may say an exec is running before its runtime has failed to
    start it, so only the process list counts as running."""
    deadline = time.monotonic() + timeout
    pending = dict(execs)
    ended: list[str] = []
    while True:
        seen = read_top(_top(client, container_id))
        for family, exec_id in list(pending.items()):
            if family in seen:
                del pending[family]
                continue
            state = client.api.exec_inspect(exec_id)
            if not state.get("Running") and state.get("ExitCode") is not None:
                ended.append(family)
                del pending[family]
        if not pending or time.monotonic() > deadline:
            return seen, ended, list(pending)
        time.sleep(0.05)


def _exec_cost(api: Any, container_id: str, native: str, cpu_file: Path | None) -> tuple[float | None, float]:
    """(CPU, wall) seconds of an exec that starts a program which ends at once: the
    median of three. The wall time is the engine's whole exec path (API, runtime, the
    process's start and end reported back); the CPU time, read from the container's
    cgroup on this machine's kernel, is the runtime's share of it (``runc init`` runs in
    the container's cgroup before the program starts)."""
    walls: list[float] = []
    cpus: list[float] = []
    for _ in range(EXEC_COST_RUNS):
        before = read_cpu_seconds(cpu_file)
        start = time.perf_counter()
        exec_id = api.exec_create(container_id, [f"{PROBE_DIR}/{native}.exit"])["Id"]
        api.exec_start(exec_id)
        walls.append(time.perf_counter() - start)
        after = read_cpu_seconds(cpu_file)
        if before is not None and after is not None:
            cpus.append(after - before)
    return (statistics.median(cpus) if cpus else None), statistics.median(walls)


def _error_of(api: Any, container_id: str, family: str) -> str:
    """Run the program again, attached, for what the engine says about it."""
    exec_id = api.exec_create(container_id, [f"{PROBE_DIR}/{family}"])["Id"]
    stdout, stderr = exec_output(api, exec_id)
    text = ((stderr or b"") + (stdout or b"")).decode("utf-8", "replace").strip()
    code = api.exec_inspect(exec_id).get("ExitCode")
    return text or f"exit code {code}"


def _same_kernel(proc: Path, pid: str, nonce: str) -> bool:
    """The engine's PID of the probe's first process is, in this machine's /proc, that
    process (it carries the random word it was started with)."""
    if not pid.isdigit():
        return False
    try:
        cmdline = (proc / pid / "cmdline").read_bytes()
    except OSError:
        return False
    return nonce.encode() in cmdline.split(b"\0")


def families_of(platforms: Iterable[Platform]) -> list[str]:
    return sorted({p.architecture for p in platforms if p.os == "linux"})
