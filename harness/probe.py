"""The slowdown probe: a short, fixed set of commands timed on every platform.

It gives each platform a slowdown figure even when the user has no tests of their own. Each
command stands for one kind of work a test does, and runs a few times; the median counts:

- ``start``: starting a small program (``uname -m``); under QEMU this is the translator
  starting up, the cost that dominates short commands;
- ``shell``: a shell loop, interpreter work (branches, small allocations);
- ``hash``: ``sha256sum`` over the shell's own binary, straight-line integer code.

A command the image lacks is left out. The loop is sized so that
the work inside the container, not the ``docker exec`` round trip around it, dominates the
emulated time (about 0.13 s under QEMU here, 8 ms natively).

Emulation cost belongs to the platform (and its engine), not to the image, so one process
probes each platform once and hands the figures to every image of that platform.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from .layers import Filesystem

#: Runs of each command; the median counts, so one slow run (a noisy neighbour) does not.
RUNS = 3
#: Iterations of the shell loop.
SHELL_LOOP = 10000
#: How many times ``hash`` reads the shell's binary (about 1 MB for busybox).
HASH_PASSES = 8


@dataclass(frozen=True)
class ProbeCommand:
    name: str
    argv: tuple[str, ...]


@dataclass(frozen=True)
class ProbeResult:
    #: Command name -> median seconds, for the commands that ran and exited 0.
    samples: dict[str, float] = field(default_factory=dict)
    #: Why a command gave no sample (it failed, say): command name -> reason.
    failures: dict[str, str] = field(default_factory=dict)
    #: The image whose container ran the probe.
    image: str = ""

    @property
    def detail(self) -> str:
        ran = ", ".join(f"{name} {secs * 1000:.0f} ms" for name, secs in self.samples.items())
        out = f"median of {RUNS} runs: {ran}" if ran else "no probe command ran"
        if self.image:
            out += f" (in {self.image})"
        if self.failures:
            out += "; " + "; ".join(f"{name}: {why}" for name, why in self.failures.items())
        return out


def commands(fs: Filesystem, path_dirs: Sequence[str]) -> list[ProbeCommand]:
    """The probe commands this image can run, with paths resolved in its filesystem."""
    out: list[ProbeCommand] = []
    uname = fs.which("uname", path_dirs)
    if uname:
        out.append(ProbeCommand("start", (uname, "-m")))
    sh = fs.which("sh", path_dirs)
    if sh:
        loop = f"i=0; while [ $i -lt {SHELL_LOOP} ]; do i=$((i+1)); done"
        out.append(ProbeCommand("shell", (sh, "-c", loop)))
    sha = fs.which("sha256sum", path_dirs)
    if sha and sh:
        out.append(ProbeCommand("hash", (sha, *[sh] * HASH_PASSES)))
    return out


def run_probe(cmds: Sequence[ProbeCommand], run: Callable[[Sequence[str]], tuple[int, float, str]]) -> ProbeResult:
    """Time each command ``RUNS`` times with ``run(argv) -> (exit code, seconds, stderr)``."""
    samples: dict[str, float] = {}
    failures: dict[str, str] = {}
    for cmd in cmds:
        times: list[float] = []
        for _ in range(RUNS):
            code, secs, err = run(cmd.argv)
            if code != 0:
                failures[cmd.name] = f"`{' '.join(cmd.argv[:2])}` exited {code}: {err.strip()[:120]}"
                break
            times.append(secs)
        else:
            samples[cmd.name] = statistics.median(times)
    return ProbeResult(samples, failures)
