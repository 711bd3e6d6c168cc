"""Labels on every container the harness starts: whose it is, so it can be removed."""

from __future__ import annotations

import socket

#: Which machine started a container: a stale-container sweep only judges its own.
HOSTNAME = socket.gethostname()

LABEL = "io.multiarch-harness"
LABEL_SESSION = f"{LABEL}.session"
LABEL_IMAGE = f"{LABEL}.image"
LABEL_PLATFORM = f"{LABEL}.platform"
LABEL_DIGEST = f"{LABEL}.digest"
LABEL_PID = f"{LABEL}.pid"
LABEL_HOST = f"{LABEL}.host"
