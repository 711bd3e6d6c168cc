"""What the engine tier's tests share: where the stack and the samples are, throwaway test
projects run with the plugin in a subprocess, their JSON report read back, and a few reads
of the engine and the registry. The fixtures that use these live in conftest.py."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import uuid
from pathlib import Path

import docker
import pytest
import requests

from harness.labels import LABEL
from harness.reference import Reference
from harness.registry import Registry

REGISTRY = os.environ.get("SAMPLE_REGISTRY", "127.0.0.1:5000")
SAMPLES = ("good", "amd64-tarball", "armv7-in-v6", "lost-arm64", "mislabelled")
TOP = Path(__file__).resolve().parents[2]
RELEASE_PLATFORMS = [
    line.split()[0]
    for line in (TOP / "sample_images" / "platforms.txt").read_text().splitlines()
    if line.strip() and not line.startswith("#")
]
DEBIAN_SAMPLES = ("debian", "debian-defects")
DEBIAN_PLATFORMS = [
    word
    for line in (TOP / "sample_images" / "debian" / "platforms").read_text().splitlines()
    if not line.startswith("#")
    for word in line.split()
]


#: What a team would write for its own image: the busybox samples' user tests.
SAMPLE_TESTS = TOP / "sample_images" / "tests" / "test_busybox.py"


def sample_run_args(samples: dict[str, str], where: Path) -> list[str]:
    """The sample run: every busybox sample on the twelve release platforms, every report."""
    return [
        *(a for ref in samples.values() for a in ("--image", ref)),
        "--platforms",
        ",".join(RELEASE_PLATFORMS),
        "-rf",
        "-v",
        "--junitxml",
        str(where / "junit.xml"),
        "--multiarch-markdown",
        str(where / "summary.md"),
        "--multiarch-html",
        str(where / "report.html"),
        "--slowdown-probe",
        "always",
    ]


def unavailable(why: str) -> None:
    """Skip the test for a missing piece of the stack; in CI, fail it."""
    message = f"{why}; start the stack with stack/setup.sh (scripts/bootstrap does it all)"
    if os.environ.get("CI"):
        pytest.fail(f"engine tier in CI: {message}", pytrace=False)
    pytest.skip(message)


def sample_refs(registry: str, names: tuple[str, ...]) -> dict[str, str]:
    """The references of the named samples; unavailable if one is not in the registry."""
    refs = {name: f"{registry}/samples/{name}:1.0" for name in names}
    for name in names:
        got = requests.head(
            f"http://{registry}/v2/samples/{name}/manifests/1.0",
            headers={
                "Accept": "application/vnd.oci.image.index.v1+json, "
                "application/vnd.docker.distribution.manifest.list.v2+json"
            },
            timeout=5,
        )
        if got.status_code != 200:
            unavailable(f"sample image {refs[name]} is not in the registry (run sample_images/build.sh)")
    return refs


def interruptible() -> None:
    """For a child the test interrupts (``preexec_fn``): SIGINT at its default, even when
    this run was started in the background, where a shell's ``&`` leaves it ignored and the
    child would inherit that."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_job(cmd: list[str], where: Path, env: dict[str, str]) -> subprocess.Popen:
    """``cmd`` in the background, in a process group of its own that the test signals whole,
    as a CI runner cancelling a job does; its output in one pipe."""
    return subprocess.Popen(
        cmd,
        cwd=where,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **env},
        start_new_session=True,
        preexec_fn=interruptible,
    )


def reap(proc: subprocess.Popen) -> None:
    """Stop a pytest started in the background if it still runs; always close its pipe."""
    if proc.poll() is None:
        proc.kill()
    if proc.stdout is not None and not proc.stdout.closed:
        proc.communicate()


def harness_containers(client: docker.DockerClient) -> list[str]:
    # The low-level list: the high-level one inspects each container after listing, and
    # fails on one that a run removed in between.
    return [c["Id"] for c in client.api.containers(all=True, filters={"label": LABEL})]


def run_plugin(
    where: Path, *args: str, timeout: float = 900, env: dict[str, str] | None = None
) -> tuple[pytest.RunResult, dict]:
    """Run pytest with the plugin in a subprocess in ``where``; returns the result and its JSON."""
    report = where / "multiarch.json"
    report.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--multiarch-json", str(report), *args]
    start = time.monotonic()
    proc = subprocess.run(
        cmd, cwd=where, capture_output=True, text=True, timeout=timeout, check=False, env={**os.environ, **(env or {})}
    )
    result = pytest.RunResult(
        proc.returncode, proc.stdout.splitlines(), proc.stderr.splitlines(), time.monotonic() - start
    )
    data = json.loads(report.read_text()) if report.exists() else {}
    return result, data


def project(tmp_path_factory: pytest.TempPathFactory, name: str, files: dict[str, str]) -> Path:
    """A throwaway test project: its own folder, an empty ini, the given test files."""
    where = tmp_path_factory.mktemp(name)
    (where / "pytest.ini").write_text("[pytest]\n")
    for filename, text in files.items():
        (where / filename).write_text(text)
    return where


def by_platform(image: dict) -> dict[str, dict]:
    return {p["platform"]: p for p in image["platforms"]}


def image_named(data: dict, ref: str) -> dict:
    return next(i for i in data["images"] if i["ref"] == ref)


def blob_bytes(registry: Registry, ref: Reference, digest: str) -> bytes:
    """The whole blob, fetched once into the registry client's cache and verified there."""
    return registry.blob_path(ref, digest).read_bytes()


def buildah_write(ref: str, *destinations: str) -> None:
    """Write the index ``ref`` as buildah does: ``oci:PATH:TAG``, ``oci-archive:PATH:TAG``."""
    if not shutil.which("buildah"):
        pytest.fail("buildah is not installed (sample_images/build.sh installs it)")
    name = f"multiarch-test-{uuid.uuid4().hex[:8]}"
    run = lambda *a: subprocess.run(["buildah", *a], check=True, capture_output=True, text=True)  # noqa: E731
    run("manifest", "create", name)
    try:
        run("manifest", "add", "--all", "--tls-verify=false", name, f"docker://{ref}")
        for dest in destinations:
            run("manifest", "push", "--all", "--tls-verify=false", name, dest)
    finally:
        subprocess.run(["buildah", "manifest", "rm", name], capture_output=True, check=False)


class StackEngine:
    """An engine that a stack script starts (``start``), stops and reports on."""

    def __init__(self, name: str, start: list[str], stop: list[str], status: list[str], url: str) -> None:
        self.name, self.url = name, url
        self._start, self._stop, self._status = start, stop, status
        self._proc: subprocess.Popen | None = None
        self._log: Path | None = None
        self._started_here = False
        self._ready: bool | None = None
        self.status = ""

    def _running(self) -> bool:
        return subprocess.run(self._status, cwd=TOP, capture_output=True, check=False).returncode == 0

    def start_in_background(self, config: pytest.Config) -> None:
        if self._proc is not None:
            return
        self._started_here = not self._running()
        self._log = Path(config.rootpath) / ".pytest-stack" / f"{self._start[0].rsplit('/', 1)[-1]}.log"
        self._log.parent.mkdir(exist_ok=True)
        with open(self._log, "w") as log:
            # Its own session: Ctrl-C of the tests reaches pytest, which stops it at the end.
            self._proc = subprocess.Popen(
                self._start, cwd=TOP, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def ready(self, timeout: float = 1800) -> StackEngine:
        """Wait for the background start; unavailable (a failure in CI) with its log if it failed."""
        if self._proc is None:
            unavailable(f"{self.name} was not started (no test of it was collected)")
        assert self._proc is not None
        assert self._log is not None
        if self._ready is None:
            try:
                code = self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                code = None
            self.status = self._log.read_text(errors="replace")
            self._ready = code == 0
        if not self._ready:
            unavailable(f"{self.name} did not start: {' '.join(self._start)} said:\n{self.status[-3000:]}")
        return self

    def stop_if_started(self) -> None:
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(60)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        if self._started_here:
            subprocess.run(self._stop, cwd=TOP, capture_output=True, check=False, timeout=300)


def busybox_binaries(ref: str, platforms: tuple[str, ...]) -> dict[str, bytes]:
    """Each platform's static busybox, read from an image's layers (the good sample's)."""
    from harness import Harness

    out = {}
    with Harness(",".join(platforms)) as h:
        for target in h.plan(ref).targets:
            source = h.source(target.image)
            for layer in source.manifest(target.digest).layers:
                with tarfile.open(source.blob_path(layer.digest), mode="r:*") as tar:
                    for member in tar:
                        if member.isfile() and member.name.lstrip("./") == "bin/busybox":
                            found = tar.extractfile(member)
                            assert found is not None
                            out[str(target.platform)] = found.read()
    return out


def rootfs(busybox_bin: bytes, *, applets=("sh", "uname", "echo", "sleep", "true")) -> dict[str, bytes | str]:
    """A root filesystem of one static busybox and links to the applets named."""
    return {"/bin/busybox": busybox_bin, **{f"/bin/{a}": "busybox" for a in applets}}


#: A CPU-bound user test whose loop times itself inside the container: the CPU time the
#: kernel counts for the shell (/proc/self/schedstat, which QEMU passes through), read by
#: the shell itself, so no process starts inside the timed part. It appends what it
#: measured to the file $OWN_TIMES names. Format with ``steps``.
CPU_BOUND_TEST = """
import json, os

LOOP = (
    "read a _ < /proc/self/schedstat; i=0; while [ $i -lt {steps} ]; do i=$((i+1)); done; "
    "read b _ < /proc/self/schedstat; echo $a $b"
)


def test_cpu_bound(container, platform):
    result = container.run(["sh", "-c", LOOP])
    assert result.exit_code == 0, result.stderr
    a, b = (int(x) / 1e9 for x in result.stdout.split())
    with open(os.environ["OWN_TIMES"], "a") as out:
        out.write(json.dumps({{"platform": str(platform), "own": b - a}}) + "\\n")
"""


def own_times(path: Path) -> dict[str, float]:
    """Platform -> the loop's own seconds, as CPU_BOUND_TEST wrote them."""
    out = {}
    for line in path.read_text().splitlines():
        row = json.loads(line)
        out[row["platform"]] = row["own"]
    return out


def reported_command_s(image: dict, test: str) -> dict[str, float]:
    """Platform -> the report's own time (command_s) of the test named ``test``."""
    return {
        plat["platform"]: next(t["command_s"] for t in plat["tests"] if test in t["nodeid"])
        for plat in image["platforms"]
    }
