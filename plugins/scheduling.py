"""Send every test of one platform to the same xdist worker.

A worker then starts one container per (image, platform) and reuses it for all of that
platform's tests, instead of every worker starting its own. pytest-xdist's ``loadgroup``
would do this from ``xdist_group`` marks, but it works by rewriting ``item._nodeid``, which
pytest 9.2 no longer reads: the groups are silently ignored. This scheduler finds the
platform in each node id instead (the plugin puts it in every parameter id and check name).
"""

from __future__ import annotations

import re

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
