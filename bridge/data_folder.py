"""Free space in the data folder: ``/healthz`` reports it and the log says when it runs out and returns.

A full disk under SQLite makes every write fail ("database or disk is full"): decisions, escalations
and the bot's sync token could not be stored. Hearth keeps running (the gate fails open, the bot waits
and handles the same batch again, nothing is skipped), and this part says why it is not working.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MB = 1024 * 1024


class DataFolder:
    """The folders Hearth writes to (``data_dir``; a SQLite database's folder when elsewhere)."""

    def __init__(self, data_dir: Path, database_url: str, min_free_mb: int):
        folders = [data_dir]
        if database_url.startswith("sqlite:///") and not database_url.startswith("sqlite:///:memory:"):
            folders.append(Path(database_url.removeprefix("sqlite:///")).parent)
        self.folders = list(dict.fromkeys(p.resolve() for p in folders))
        self.min_free = min_free_mb * MB
        self._short: set[Path] = set()

    def check(self) -> dict[str, Any]:
        """The free space of each folder; ``ok`` is False when one has less than the minimum (or
        cannot be read). Logs an error when a folder runs short and a notice when space returns."""
        folders: list[dict[str, Any]] = []
        for folder in self.folders:
            free: int | None
            try:
                st = os.statvfs(folder)
                free = st.f_bavail * st.f_frsize
                error = (
                    None
                    if free >= self.min_free
                    else f"only {free // MB} MB free (minimum {self.min_free // MB} MB)"
                )
            except OSError as e:
                free, error = None, f"cannot read its free space: {e.strerror}"
            folders.append({"path": str(folder), "free_mb": None if free is None else round(free / MB, 1)})
            if error is not None:
                folders[-1]["error"] = error
                if folder not in self._short:
                    self._short.add(folder)
                    log.error(
                        "data folder %s is full (%s): decisions, escalations and the sync position cannot be "
                        "stored; messages pass the gate unscreened and wait for the bot until space returns",
                        folder,
                        error,
                    )
            elif folder in self._short and free is not None:
                self._short.discard(folder)
                log.warning(
                    "data folder %s has space again (%d MB free); storing resumes", folder, free // MB
                )
        return {"ok": not self._short, "min_free_mb": self.min_free // MB, "folders": folders}
