"""Test a container image on every platform of its manifest list.

The library needs no pytest: :class:`Harness` resolves images to platforms, runs the
built-in checks and hands out running containers; the pytest plugin only wires it in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .checks import CheckResult
from .engine import Engine, EngineError, Mode
from .errors import MultiarchError
from .platform import Platform, PlatformError
from .reference import ImageReferenceError, Reference
from .registry import Registry, RegistryError
from .session import Harness, ImagePlan, Target

if TYPE_CHECKING:
    from .container import CommandResult, CommandTimeout, Container, ContainerGone


_CONTAINER_NAMES = ("CommandResult", "CommandTimeout", "Container", "ContainerGone")


def __getattr__(name: str) -> Any:
    # testcontainers (and docker with it) loads only when containers are used.
    if name in _CONTAINER_NAMES:
        from . import container

        return getattr(container, name)
    raise AttributeError(name)


__all__ = [
    "CheckResult",
    "CommandResult",
    "CommandTimeout",
    "Container",
    "ContainerGone",
    "Engine",
    "EngineError",
    "Harness",
    "ImagePlan",
    "ImageReferenceError",
    "Mode",
    "MultiarchError",
    "Platform",
    "PlatformError",
    "Reference",
    "Registry",
    "RegistryError",
    "Target",
]
