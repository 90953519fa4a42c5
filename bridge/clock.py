"""The bridge owns the only clock (habit 4): domain code is handed ``now``."""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

log = logging.getLogger(__name__)


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    """Wall-clock time, optionally shifted by an offset an operator or a test advances.

    With ``offset_file`` (setting ``clock_offset_file``, for drills and tests) the offset is the number
    of seconds written in that file, re-read whenever the file changes, so a running Hearth and the
    next one after a restart share one shifted time. A missing or unreadable file means no offset.
    """

    def __init__(self, offset_file: Path | None = None) -> None:
        self.offset = timedelta(0)
        self.offset_file = offset_file
        self._seen: tuple[int, int] | None = None
        self._file_offset = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset + self._read_file()

    def advance(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)

    def _read_file(self) -> timedelta:
        if self.offset_file is None:
            return timedelta(0)
        try:
            st = os.stat(self.offset_file)
        except OSError:
            self._seen, self._file_offset = None, timedelta(0)
            return self._file_offset
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp != self._seen:
            self._seen = stamp
            try:
                seconds = float(self.offset_file.read_text().strip() or 0)
            except (OSError, ValueError) as e:
                log.error("clock offset file %s unreadable (%s): using no offset", self.offset_file, e)
                seconds = 0.0
            if seconds:
                log.warning("clock shifted by %.0f s (clock_offset_file %s)", seconds, self.offset_file)
            self._file_offset = timedelta(seconds=seconds)
        return self._file_offset
