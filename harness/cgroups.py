"""A container's CPU time, read from its cgroup where the engine runs on this machine's
kernel: cgroup v2's ``cpu.stat`` or v1's ``cpuacct.usage``. (The engines' stats API
answers once a second, too slowly to time one command.)"""

from __future__ import annotations

from pathlib import Path


def cgroup_cpu_file(proc: Path, pid: str, root: Path = Path("/sys/fs/cgroup")) -> Path | None:
    """The file that counts the CPU time of ``pid``'s cgroup: cgroup v2's ``cpu.stat``,
    or v1's ``cpuacct.usage``. None when the process or its cgroup is not visible here."""
    if not pid.isdigit() or pid == "0":
        return None
    try:
        lines = (proc / pid / "cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        rel = path.lstrip("/")
        if controllers == "":
            found = root / rel / "cpu.stat"
        elif "cpuacct" in controllers.split(","):
            mounts = [d for d in (controllers, "cpuacct", "cpu,cpuacct") if (root / d).is_dir()]
            found = root / (mounts[0] if mounts else "cpuacct") / rel / "cpuacct.usage"
        else:
            continue
        if found.is_file():
            return found
    return None


def cgroup_cpu_seconds(name: str, text: str) -> float | None:
    """Seconds from a ``cpu.stat`` (``usage_usec``) or ``cpuacct.usage`` (nanoseconds)."""
    try:
        if name == "cpuacct.usage":
            return int(text.strip()) / 1e9
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "usage_usec":
                return int(value) / 1e6
    except ValueError:
        return None
    return None


def read_cpu_seconds(path: Path | None) -> float | None:
    """The CPU seconds ``path`` (from :func:`cgroup_cpu_file`) counts now, or None."""
    if path is None:
        return None
    try:
        return cgroup_cpu_seconds(path.name, path.read_text())
    except OSError:
        return None
