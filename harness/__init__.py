"""Test a container image on every platform of its manifest list.

The library needs no pytest: :class:`Harness` resolves images to platforms, runs the
built-in checks and hands out running containers; the pytest plugin only wires it in.
"""

from __future__ import annotations

from .checks import CheckResult
from .container import CommandResult, Container
from .engine import Engine, EngineError, Mode
from .platform import Platform, PlatformError
from .reference import Reference, ReferenceError
from .registry import Registry, RegistryError
from .session import Harness, ImagePlan, Target

__all__ = [
    "CheckResult",
    "CommandResult",
    "Container",
    "Engine",
    "EngineError",
    "Harness",
    "ImagePlan",
    "Mode",
    "Platform",
    "PlatformError",
    "Reference",
    "ReferenceError",
    "Registry",
    "RegistryError",
    "Target",
]
