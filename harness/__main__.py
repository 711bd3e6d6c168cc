"""``python -m harness gate|promote ...``: see harness.gate."""

from __future__ import annotations

import sys

from .gate import main

sys.exit(main())
