"""The shipped themes as the running service reads them (once): the welcome's guidelines, the
sessions' spaces and exposure ladders. Provisioning loads its own (``hearth spaces`` may name
another directory)."""

from __future__ import annotations

import logging
from functools import cache

from spaces.themes import Theme, ThemeError, load_themes

log = logging.getLogger(__name__)


@cache
def shipped_themes() -> dict[str, Theme]:
    """Theme slug -> theme; empty (and logged) if the themes do not load."""
    try:
        return {t.slug: t for t in load_themes()}
    except ThemeError as e:
        log.error("themes did not load (%s); welcomes carry no guidelines, sessions no ladders", e)
        return {}
