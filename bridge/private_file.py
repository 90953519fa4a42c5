"""Files that hold secrets (generated settings, access tokens): written atomically, mode 600 from birth."""

from __future__ import annotations

import os
from pathlib import Path


def write_private(path: Path, text: str) -> None:
    """Replace ``path`` with ``text``; the file is never readable by others, not even while written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    tmp.chmod(0o600)  # an older tmp file may have had other bits
    tmp.replace(path)
