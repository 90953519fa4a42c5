"""Errors the moderation domain raises while loading its configuration."""

from __future__ import annotations

from pathlib import Path


class ConfigError(ValueError):
    """A moderation config file is invalid. Names the file, where in it (line or key) and why."""

    def __init__(self, file: Path | str, reason: str, *, line: int | None = None, key: str | None = None):
        self.file = str(file)
        self.line = line
        self.key = key
        self.reason = reason
        where = self.file
        if line is not None:
            where += f":{line}"
        if key is not None:
            where += f" [{key}]"
        super().__init__(f"{where}: {reason}")


def line_of(text: str, needle: str, *, after: int = 0) -> int | None:
    """1-based line number of the first line at or after ``after`` that contains ``needle``."""
    for no, line in enumerate(text.splitlines(), start=1):
        if no >= after and needle in line:
            return no
    return None
