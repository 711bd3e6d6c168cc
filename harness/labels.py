"""Labels on every container the harness starts: whose it is, so it can be removed."""

from __future__ import annotations

LABEL = "io.multiarch-harness"
LABEL_SESSION = f"{LABEL}.session"
LABEL_IMAGE = f"{LABEL}.image"
LABEL_PLATFORM = f"{LABEL}.platform"
LABEL_DIGEST = f"{LABEL}.digest"
LABEL_PID = f"{LABEL}.pid"
