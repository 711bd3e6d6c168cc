"""Send every test of one platform to the same xdist worker.

A worker then starts one container per (image, platform) and reuses it for all of that
platform's tests, instead of every worker starting its own. pytest-xdist's ``loadgroup``
would do this from ``xdist_group`` marks, but it works by rewriting ``item._nodeid``, which
pytest 9.2 no longer reads: the groups are silently ignored. This scheduler finds the
platform in each node id instead (the plugin puts it in every parameter id and check name).
"""

from __future__ import annotations

import re
from typing import Any

from xdist.scheduler import LoadScopeScheduling

PLATFORM_IN_ID = re.compile(r"(?:linux|windows|freebsd|darwin)/[a-z0-9_]+(?:/v[0-9]+)?")


def platform_scope(nodeid: str) -> str:
    """The platform named in a node id's parameters, or the node id itself."""
    _, bracket, params = nodeid.partition("[")
    found = PLATFORM_IN_ID.search(params) if bracket else None
    return found.group(0) if found else nodeid


class PlatformScheduling(LoadScopeScheduling):  # type: ignore[misc]
    def _split_scope(self, nodeid: str) -> str:
        return platform_scope(nodeid)

    def remove_node(self, node: Any) -> str | None:
        """A crashed worker's platform goes to another worker, but not the test it crashed
        in: run again, it would take down every replacement worker in turn (the scope
        scheduler requeues the whole unit, that test first)."""
        workload = self.assigned_work.get(node, {})
        crashed = next((nodeid for unit in workload.values() for nodeid, done in unit.items() if not done), None)
        for unit in workload.values():
            if crashed in unit:
                unit[crashed] = True
        found: str | None = super().remove_node(node)
        return crashed if crashed is not None else found
