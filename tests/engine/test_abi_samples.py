"""samples/debian-abi and samples/debian-v3: each ABI defect that sample_images/debian.sh
puts in, shown by running it in a container of that platform's image, pulled by digest.

Every file in these defects has the right architecture; what breaks is what the platform
promises beside it: the libraries present (ppc64le), the glibc version (s390x), the CPU level
(amd64), the page size (arm64). Each test runs the defect and checks the loader's or the
runtime's own message, and runs a control beside it that shows the setup is not what fails.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import tarfile
import uuid
from pathlib import Path

import pytest
import requests
from elftools.elf.elffile import ELFFile
from enginekit import DEBIAN_PLATFORMS, sample_refs, unavailable

pytestmark = pytest.mark.engine

ABI_SAMPLES = ("debian-abi", "debian-v3")
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
#: The platforms that debian.sh gives a third layer with one defect; the others stay clean.
DEFECTIVE = ("linux/amd64", "linux/arm64", "linux/ppc64le", "linux/s390x")
CLEAN = ("linux/386", "linux/arm/v7")
QEMU_X86_64 = "/usr/bin/qemu-x86_64-static"
#: The CPU flags of x86-64-v3 beyond v2 (Linux's names): the v3 builds run natively only with all.
V3_FLAGS = {"avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "abm", "movbe", "xsave"}
GNU_PROPERTY_X86_ISA_1_V3 = 4


def platform_name(p: dict) -> str:
    return "/".join(x for x in (p["os"], p["architecture"], p.get("variant")) if x)


class Image:
    """One sample's index, read from the registry, and a way to run its platforms."""

    def __init__(self, ref: str) -> None:
        self.ref = ref
        self.host, _, rest = ref.partition("/")
        self.repo, _, self.tag = rest.rpartition(":")
        self.index = self._get(f"manifests/{self.tag}", OCI_INDEX)
        self.digests = {platform_name(m["platform"]): m["digest"] for m in self.index["manifests"]}
        self.pulled: set[str] = set()

    def _get(self, path: str, accept: str) -> dict:
        got = requests.get(f"http://{self.host}/v2/{self.repo}/{path}", headers={"Accept": accept}, timeout=30)
        got.raise_for_status()
        return got.json()

    def manifest(self, platform: str) -> dict:
        return self._get(f"manifests/{self.digests[platform]}", OCI_MANIFEST)

    def layers(self, platform: str) -> list[str]:
        return [layer["digest"] for layer in self.manifest(platform)["layers"]]

    def layer_entries(self, platform: str, n: int) -> dict[str, tarfile.TarInfo]:
        """The entries of the platform's layer n by name (a small layer: it is read whole)."""
        digest = self.layers(platform)[n]
        got = requests.get(f"http://{self.host}/v2/{self.repo}/blobs/{digest}", timeout=60)
        got.raise_for_status()
        with tarfile.open(fileobj=io.BytesIO(got.content), mode="r:gz") as tar:
            return {m.name: m for m in tar.getmembers()}

    def by_digest(self, platform: str) -> str:
        """The platform's own manifest, pulled by its digest (never tag + --platform)."""
        ref = f"{self.host}/{self.repo}@{self.digests[platform]}"
        if ref not in self.pulled:
            docker("pull", "-q", ref, check=True)
            self.pulled.add(ref)
        return ref

    def run(self, platform: str, *cmd: str, opts: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
        return docker("run", "--rm", "--platform", platform, *opts, self.by_digest(platform), *cmd)

    def copy_out(self, platform: str, path: str, dest: Path) -> Path:
        """A file of the platform's image, copied out of a container that never starts."""
        name = f"multiarch-abi-{uuid.uuid4().hex[:8]}"
        docker("create", "--name", name, "--platform", platform, self.by_digest(platform), check=True)
        try:
            docker("cp", f"{name}:{path}", str(dest), check=True)
        finally:
            docker("rm", "-f", name)
        return dest


def docker(*args: str, check: bool = False) -> subprocess.CompletedProcess:
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=300, check=False)
    if check and proc.returncode != 0:
        pytest.fail(f"docker {' '.join(args)}: exit {proc.returncode}: {proc.stderr.strip()}")
    return proc


def said(proc: subprocess.CompletedProcess) -> str:
    return f"exit {proc.returncode}; stdout {proc.stdout!r}; stderr {proc.stderr!r}"


def ran(proc: subprocess.CompletedProcess, prints: str) -> None:
    """The command exited 0 and its output starts with ``prints``."""
    assert proc.returncode == 0, said(proc)
    assert proc.stdout.startswith(prints), said(proc)


@pytest.fixture(scope="module")
def images(registry: str) -> dict[str, Image]:
    if not shutil.which("docker"):
        unavailable("the docker command is not installed")
    refs = sample_refs(registry, (*ABI_SAMPLES, "debian"))
    return {name: Image(ref) for name, ref in refs.items()}


@pytest.fixture(scope="module")
def abi(images: dict[str, Image]) -> Image:
    return images["debian-abi"]


# --- what the index holds ---------------------------------------------------------------------------
def test_abi_image_is_debian_plus_one_defect_layer_where_there_is_a_defect(images):
    abi, debian = images["debian-abi"], images["debian"]
    assert list(abi.digests) == DEBIAN_PLATFORMS
    for plat in DEBIAN_PLATFORMS:
        layers = abi.layers(plat)
        # The same root and hello blobs as samples/debian: one defect is all that differs.
        assert layers[:2] == debian.layers(plat), plat
        assert len(layers) == (3 if plat in DEFECTIVE else 2), (plat, layers)


def test_ppc64le_layer_is_a_whiteout_of_libssl(abi):
    entries = abi.layer_entries("linux/ppc64le", 2)
    whiteout = "./usr/lib/powerpc64le-linux-gnu/.wh.libssl.so.3"
    assert sorted(entries) == [".", "./usr", "./usr/lib", "./usr/lib/powerpc64le-linux-gnu", whiteout], sorted(entries)
    assert entries[whiteout].isfile()
    assert entries[whiteout].size == 0
    assert all(entries[name].isdir() for name in entries if name != whiteout)


def test_v3_image_promises_v3_and_has_debian_abi_amd64_layers(images):
    v3, abi = images["debian-v3"], images["debian-abi"]
    assert [m["platform"] for m in v3.index["manifests"]] == [{"os": "linux", "architecture": "amd64", "variant": "v3"}]
    assert v3.layers("linux/amd64/v3") == abi.layers("linux/amd64")


# --- linux/ppc64le: libssl.so.3 removed by a whiteout ----------------------------------------
def test_ppc64le_openssl_cannot_load_libssl(abi):
    proc = abi.run("linux/ppc64le", "openssl", "version")
    assert proc.returncode == 127, said(proc)
    assert "openssl: error while loading shared libraries: libssl.so.3: cannot open shared object file" in (
        proc.stderr
    ), said(proc)
    # The whiteout took only libssl: libcrypto, from the same package, is there, and bash runs.
    control = abi.run("linux/ppc64le", "bash", "-c", "ls /usr/lib/powerpc64le-linux-gnu/libcrypto.so.3 && uname -m")
    ran(control, "/usr/lib/powerpc64le-linux-gnu/libcrypto.so.3\nppc64le\n")
    gone = abi.run("linux/ppc64le", "ls", "/usr/lib/powerpc64le-linux-gnu/libssl.so.3")
    assert gone.returncode != 0, said(gone)
    assert "No such file or directory" in gone.stderr, said(gone)


# --- linux/s390x: a trixie binary on bookworm's glibc -------------------------------------------
def test_s390x_trixie_tree_needs_a_newer_glibc(abi, tmp_path):
    proc = abi.run("linux/s390x", "/usr/local/bin/tree", "/usr/local")
    assert proc.returncode != 0, said(proc)
    match = re.search(
        r"libc\.so\.6: version `(GLIBC_2\.(\d+))' not found \(required by /usr/local/bin/tree\)", proc.stderr
    )
    assert match, said(proc)
    assert int(match.group(2)) > 36, said(proc)
    # The image's glibc is bookworm's 2.36; the binary's version needs name the newer one.
    libc = abi.run("linux/s390x", "/lib/s390x-linux-gnu/libc.so.6")
    ran(libc, "GNU C Library (Debian GLIBC 2.36-")
    assert "release version 2.36" in libc.stdout, said(libc)
    tree = abi.copy_out("linux/s390x", "/usr/local/bin/tree", tmp_path / "tree")
    with tree.open("rb") as fh:
        elf = ELFFile(fh)
        assert elf["e_machine"] == "EM_S390"
        needed = {aux.name for _, auxes in elf.get_section_by_name(".gnu.version_r").iter_versions() for aux in auxes}
    assert match.group(1) in needed, needed


# --- linux/amd64: x86-64-v3 builds under an index entry that promises v1 -------------------------
@pytest.fixture(scope="module")
def v3_cpu() -> None:
    flags = next(
        (
            set(line.split(":", 1)[1].split())
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("flags")
        ),
        set(),
    )
    if not flags >= V3_FLAGS:
        pytest.skip(f"this CPU lacks {sorted(V3_FLAGS - flags)}: the v3 builds cannot run natively here")


@pytest.fixture(scope="module")
def qemu_x86_64() -> str:
    if not Path(QEMU_X86_64).exists():
        unavailable(f"{QEMU_X86_64} is not installed (qemu-user-static)")
    return QEMU_X86_64


def in_qemu64(image: Image, platform: str, qemu: str, binary: str) -> subprocess.CompletedProcess:
    """The image's binary, in its own container, on QEMU's qemu64 CPU: x86-64 v1."""
    return image.run(platform, "/qemu", "-cpu", "qemu64", binary, opts=("-v", f"{qemu}:/qemu:ro"))


def test_amd64_v3_builds_run_on_this_cpu(abi, v3_cpu):
    ran(abi.run("linux/amd64", "/usr/local/bin/hello-v3"), "hello, world: C, hello-v3,")
    ran(abi.run("linux/amd64", "/usr/local/bin/hello-go-v3"), "hello, world: Go ")


def test_amd64_v3_c_build_is_refused_by_the_loader_on_a_v1_cpu(abi, qemu_x86_64, tmp_path):
    proc = in_qemu64(abi, "linux/amd64", qemu_x86_64, "/usr/local/bin/hello-v3")
    assert proc.returncode == 127, said(proc)
    assert proc.stderr.strip() == "/usr/local/bin/hello-v3: CPU ISA level is lower than required", said(proc)
    # The same CPU runs the image's v1 programs: the refusal is the v3 marking's.
    control = in_qemu64(abi, "linux/amd64", qemu_x86_64, "/usr/bin/bash")
    assert control.returncode == 0, said(control)
    hello = abi.copy_out("linux/amd64", "/usr/local/bin/hello-v3", tmp_path / "hello-v3")
    with hello.open("rb") as fh:
        needed = [
            prop["pr_data"]
            for seg in ELFFile(fh).iter_segments()
            if seg["p_type"] == "PT_NOTE"
            for note in seg.iter_notes()
            if note["n_type"] == "NT_GNU_PROPERTY_TYPE_0"
            for prop in note["n_desc"]
            if prop["pr_type"] == "GNU_PROPERTY_X86_ISA_1_NEEDED"
        ]
    assert len(needed) == 1, needed
    assert needed[0] & GNU_PROPERTY_X86_ISA_1_V3, needed


def test_amd64_v3_go_build_is_refused_by_its_runtime_on_a_v1_cpu(abi, qemu_x86_64):
    proc = in_qemu64(abi, "linux/amd64", qemu_x86_64, "/usr/local/bin/hello-go-v3")
    assert proc.returncode == 1, said(proc)
    assert "This program can only be run on AMD64 processors with v3 microarchitecture support." in (
        proc.stdout + proc.stderr
    ), said(proc)
    ran(in_qemu64(abi, "linux/amd64", qemu_x86_64, "/usr/local/bin/hello"), "hello, world: Go ")


def test_v3_image_runs_its_v3_builds(images, v3_cpu):
    v3 = images["debian-v3"]
    for binary, greeting in (("hello-v3", "hello, world: C, hello-v3,"), ("hello-go-v3", "hello, world: Go ")):
        ran(v3.run("linux/amd64/v3", f"/usr/local/bin/{binary}"), greeting)


# --- linux/arm64: linked for 4 KiB pages only ----------------------------------------------------
def test_arm64_hello_4k_runs_here_and_is_aligned_for_4k_pages_only(abi, tmp_path):
    ran(abi.run("linux/arm64", "/usr/local/bin/hello-4k"), "hello, world: C, hello-4k, page size 4096,")
    hello = abi.copy_out("linux/arm64", "/usr/local/bin/hello-4k", tmp_path / "hello-4k")
    with hello.open("rb") as fh:
        elf = ELFFile(fh)
        assert elf["e_machine"] == "EM_AARCH64"
        loads = [(s["p_align"], s["p_vaddr"], s["p_offset"]) for s in elf.iter_segments() if s["p_type"] == "PT_LOAD"]
        interp = [s.get_interp_name() for s in elf.iter_segments() if s["p_type"] == "PT_INTERP"]
    assert interp == ["/lib/ld-linux-aarch64.so.1"], interp
    assert {align for align, _, _ in loads} == {0x1000}, loads
    # What a 64 KiB page cannot hold: a segment whose address and offset differ modulo 64 KiB.
    assert any((vaddr - offset) % 0x10000 for _, vaddr, offset in loads), loads
    # Debian's own arm64 files are linked for 64 KiB pages.
    bash = abi.copy_out("linux/arm64", "/usr/bin/bash", tmp_path / "bash")
    with bash.open("rb") as fh:
        assert {s["p_align"] for s in ELFFile(fh).iter_segments() if s["p_type"] == "PT_LOAD"} == {0x10000}


def test_arm64_hello_4k_is_refused_by_glibc_with_64k_pages(abi):
    """QEMU 7.2 reports the page size QEMU_PAGESIZE asks for, but only to a main program
    aligned for it: hello-4k run directly is told 4096. Run through the image's loader
    (64 KiB aligned), the program is mapped by glibc, which checks it against 64 KiB."""
    big = ("-e", "QEMU_PAGESIZE=65536")
    probe = abi.run("linux/arm64", "python3", "-c", "import os; print(os.sysconf('SC_PAGESIZE'))", opts=big)
    if probe.stdout.strip() != "65536":
        pytest.skip(f"this QEMU does not take QEMU_PAGESIZE=65536 ({said(probe)})")
    loader = "/lib/ld-linux-aarch64.so.1"
    proc = abi.run("linux/arm64", loader, "/usr/local/bin/hello-4k", opts=big)
    assert proc.returncode == 127, said(proc)
    assert (
        "/usr/local/bin/hello-4k: error while loading shared libraries: /usr/local/bin/hello-4k: "
        "ELF load command address/offset not page-aligned"
    ) in proc.stderr, said(proc)
    # Debian's 64 KiB-aligned programs load the same way, and hello-4k on 4 KiB pages.
    ran(abi.run("linux/arm64", loader, "/usr/bin/openssl", "version", opts=big), "OpenSSL 3.")
    ran(abi.run("linux/arm64", loader, "/usr/local/bin/hello-4k"), "hello, world: C, hello-4k, page size 4096,")


# --- the clean platforms -----------------------------------------------------------------------
@pytest.mark.parametrize("platform", CLEAN)
def test_clean_platforms_run_openssl_and_hello(abi, platform):
    ran(abi.run(platform, "openssl", "version"), "OpenSSL 3.")
    goarch = {"linux/386": "linux/386", "linux/arm/v7": "linux/arm"}[platform]
    hello = abi.run(platform, "/usr/local/bin/hello")
    ran(hello, "hello, world: Go ")
    assert hello.stdout.strip().endswith(f", {goarch}"), said(hello)


def test_each_config_states_its_platform_and_its_layers(abi):
    for plat in DEBIAN_PLATFORMS:
        manifest = abi.manifest(plat)
        got = requests.get(f"http://{abi.host}/v2/{abi.repo}/blobs/{manifest['config']['digest']}", timeout=30)
        config = json.loads(got.content)
        assert platform_name(config) == plat
        assert len(config["rootfs"]["diff_ids"]) == len(manifest["layers"]) == len(config["history"])
