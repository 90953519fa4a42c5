"""Hearth's label scheme for support-group messages, and the labelled data files written in it.

Every message (or short conversation by one member, read together) carries five labels: the crisis
``tier`` and ``category`` of a person at risk, the ``harm`` it does to other people, the ``target`` its
risk, pain or harm is about, and a free-text ``kind``. The training corpus (``bench/data/corpus``) and
the frozen evaluation sets (``bench/data/frozen_eval``, ``frozen_eval_2``, ``frozen_eval_3``) are JSON Lines files in this scheme; their
README says how they were written. The scheme itself is the one the learned model's heads predict
(:mod:`moderation.detectors.support_model`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from moderation.errors import ConfigError

TIERS: tuple[str, ...] = ("none", "moderate", "high", "imminent")
TIER_RANK: dict[str, int] = {t: i for i, t in enumerate(TIERS)}
"""The one ranking of crisis tiers (none < moderate < high < imminent), for detectors, policy and escalation."""
CATEGORIES: tuple[str, ...] = (
    "ideation",
    "plan_or_means",
    "attempt_in_progress",
    "self_harm",
    "harm_to_others",
    "abuse_disclosure",
    "concern_for_other",
)
HARMS: tuple[str, ...] = (
    "none",
    "incitement_self_harm",
    "method_tip",
    "pro_eating_disorder",
    "wish_harm",
    "insult_harassment",
    "hate",
    "threat",
    "sexual_harassment",
    "spam",
)
TARGETS: tuple[str, ...] = ("self", "reader", "group", "third_party", "none")
HEADS: dict[str, tuple[str, ...]] = {
    "tier": TIERS,
    "category": CATEGORIES,
    "harm": HARMS,
    "target": TARGETS,
}
"""The learned model's outputs, in the order of their columns."""

CONTEXT_JOIN = " [SEP] "
"""How one member's consecutive messages are joined to be read together (the model's separator token)."""


@dataclass(frozen=True)
class Labelled:
    """One labelled message, or a conversation (``messages`` of one member, oldest first)."""

    messages: tuple[str, ...]
    tier: str
    category: str | None
    harm: str
    target: str
    kind: str
    voice: str
    source: str  # "<folder>/<file>:<line>"

    @property
    def text(self) -> str:
        """The message, or the conversation's messages joined as the model reads them together."""
        return CONTEXT_JOIN.join(self.messages)

    @property
    def is_conversation(self) -> bool:
        return len(self.messages) > 1


def _field(raw: dict[str, object], key: str, allowed: Sequence[str], where: Path, line: int) -> str:
    value = raw.get(key)
    if value not in allowed:
        raise ConfigError(where, f"{key} must be one of {list(allowed)}, not {value!r}", line=line, key=key)
    return str(value)


def parse_record(raw: object, where: Path, line: int) -> Labelled:
    """One JSON Lines record in the scheme; a bad one raises :class:`ConfigError` naming file, line, key."""
    if not isinstance(raw, dict):
        raise ConfigError(where, "each line must be a JSON object", line=line)
    if "messages" in raw:
        msgs = raw["messages"]
        if not isinstance(msgs, list) or not msgs or not all(isinstance(m, str) and m.strip() for m in msgs):
            raise ConfigError(where, "messages must be a non-empty list of texts", line=line, key="messages")
        messages = tuple(msgs)
    else:
        text = raw.get("text")
        if not isinstance(text, str) or not text.strip():
            raise ConfigError(where, "text must be a non-empty string", line=line, key="text")
        messages = (text,)
    tier = _field(raw, "tier", TIERS, where, line)
    category = raw.get("category")
    if tier == "none":
        if category is not None:
            raise ConfigError(where, "category must be null when tier is none", line=line, key="category")
    else:
        category = _field(raw, "category", CATEGORIES, where, line)
    return Labelled(
        messages=messages,
        tier=tier,
        category=category if isinstance(category, str) else None,
        harm=_field(raw, "harm", HARMS, where, line),
        target=_field(raw, "target", TARGETS, where, line),
        kind=str(raw.get("kind", "") or ""),
        voice=str(raw.get("voice", "") or ""),
        source=f"{where.parent.name}/{where.name}:{line}",
    )


def data_files(folder: Path | str) -> list[Path]:
    """The ``*.jsonl`` files of a labelled data folder and its sub-folders (one per writer), in path order."""
    return sorted(Path(folder).rglob("*.jsonl"))


def load_labelled(paths: Iterable[Path | str]) -> list[Labelled]:
    """Every record of the given JSON Lines files, validated."""
    out: list[Labelled] = []
    for p in paths:
        path = Path(p)
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise ConfigError(path, f"cannot read: {exc.strerror}") from exc
        for no, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                raw = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ConfigError(path, f"not valid JSON: {exc.msg}", line=no) from exc
            out.append(parse_record(raw, path, no))
    return out


def digest(paths: Iterable[Path | str]) -> str:
    """SHA-256 over the files' names and bytes, in name order: identifies a corpus or an evaluation set."""
    h = hashlib.sha256()
    for p in sorted(Path(x) for x in paths):
        h.update(p.name.encode())
        h.update(b"\0")
        h.update(p.read_bytes())
        h.update(b"\0")
    return h.hexdigest()
