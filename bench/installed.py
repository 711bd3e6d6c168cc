"""The harness as a user installs it, for the benchmarks to time.

The development venv carries more pytest plugins than a user's (hypothesis, and testinfra
once the benchmarks installed it), and pytest loads every installed plugin in every
process: in the controller and again in each xdist worker. Timing the harness there would
time those too. So the benchmarks run it from a venv of its own holding `pip install .`
and its runtime dependencies, nothing else; it is refreshed from the working tree each run.
"""

from __future__ import annotations

import functools
import subprocess
import sys
import venv
from pathlib import Path

TOP = Path(__file__).resolve().parents[1]
VENV = TOP / ".bench-venv"


@functools.cache
def python() -> str:
    """The interpreter of the venv that holds the harness as installed from this tree
    (created, or refreshed from the tree, on the first call of a run)."""
    py = VENV / "bin" / "python"
    if not py.exists():
        print(f"creating {VENV} (the harness as a user installs it) ...", file=sys.stderr)
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
        _pip(py, str(TOP))
    _pip(py, "--no-deps", "--force-reinstall", str(TOP))  # this tree's code, not the last run's
    return str(py)


def _pip(py: Path, *args: str) -> None:
    cmd = [str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", *args]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"installing the harness into {VENV} failed ({' '.join(cmd)}):\n{out.stderr[-2000:]}")
