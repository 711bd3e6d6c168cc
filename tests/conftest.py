from __future__ import annotations

import sys
from pathlib import Path

# elfcraft and the stored documents are test helpers, not part of the package.
sys.path.insert(0, str(Path(__file__).parent))
