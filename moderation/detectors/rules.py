"""Rules detector: per-profile regex word lists with allow-lists, loaded from ``rules.toml``.

Patterns run on the normalised text and on its variants (other readings of stretched letters or of an
"I" written for "l", see :mod:`moderation.normalize`); evidence spans are mapped back to the original
text. A hit in one reading is dropped when an allow match in any reading covers the same original
characters ("dont kiiiilll urself over it" is excused where it reads "kill urself over"). A list
reports at most one signal per message (``rules.<name>``) carrying every hit as evidence, the first
rule that fired and the list's configured action hint (block / flag / escalate). The policy decides.

A ``[terms]`` table names vocabularies (``group = ['women', 'muslims?', ...]``) that patterns and
allow entries use as ``{group}``: one reviewable list of, say, the groups protected from hate, instead
of the same long alternation pasted into every pattern. A term may use terms named before it.

A list may say ``near = '{group}'``: every one of its patterns contains such a match, so the patterns
only run within ``NEAR_WINDOW`` characters of one (most messages name no group and cost one scan,
and a 50,000-character message does not run two dozen alternations over every word).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from moderation.errors import ConfigError, line_of
from moderation.types import NormalizedText, ScreenItem, Signal, Span

ACTIONS = ("block", "flag", "escalate", "note")
"""A list's hint to the policy; ``note`` is evidence for the policy only, with no disposition of its own."""
DEFAULT_RULES = Path(__file__).resolve().parents[2] / "config" / "moderation" / "rules.toml"
_TERM_REF = re.compile(r"\{([a-z][a-z0-9_]*)\}")
NEAR_WINDOW = 400
"""Characters either side of a ``near`` match that a list's patterns may reach."""
_NON_WORD = re.compile(r"\W")


@dataclass(frozen=True)
class RuleList:
    """One named word list: patterns, allow-list, where it applies and the action it suggests."""

    name: str
    action: str
    profiles: frozenset[str]
    spaces: frozenset[str]
    patterns: tuple[re.Pattern[str], ...]
    allow: tuple[re.Pattern[str], ...]
    near: re.Pattern[str] | None = None

    def applies(self, profile: str, space: str | None) -> bool:
        if "*" not in self.profiles and profile not in self.profiles:
            return False
        return not self.spaces or (space is not None and space in self.spaces)

    def windows(self, text: str) -> list[tuple[int, int]]:
        """Where the patterns can match: the whole text, or merged windows around ``near`` matches
        (ends moved to a word boundary, so a window never cuts a word in two)."""
        if self.near is None:
            return [(0, len(text))]
        out: list[tuple[int, int]] = []
        for m in self.near.finditer(text):
            start = max(0, m.start() - NEAR_WINDOW)
            cut = _NON_WORD.search(text, min(len(text), m.end() + NEAR_WINDOW))
            end = cut.start() if cut else len(text)
            if out and start <= out[-1][1]:
                out[-1] = (out[-1][0], max(out[-1][1], end))
            else:
                out.append((start, end))
        return out

    def hits(self, text: str) -> list[tuple[int, int, int]]:
        """``(start, end, pattern index)`` of every hit in ``text`` not covered by an allow match
        (allow-lists are only read once a pattern has hit)."""
        found = []
        for start, end in self.windows(text):
            for i, pat in enumerate(self.patterns):
                for m in pat.finditer(text, start, end):
                    if m.end() > m.start():
                        found.append((m.start(), m.end(), i))
        if found and self.allow:
            allowed = [m.span() for a in self.allow for m in a.finditer(text)]
            found = [(s, e, i) for s, e, i in found if not any(a_s < e and s < a_e for a_s, a_e in allowed)]
        return sorted(found)

    def hits_in(self, norm: NormalizedText) -> list[tuple[int, int, int]]:
        """:meth:`hits` in every reading of ``norm`` (its text and variants), as ``(start, end, pattern
        index)`` in ``norm.original``; a hit in one reading is also dropped when an allow match in
        another covers an original character of it."""
        if not norm.variants:
            return sorted((*_span(norm.to_original(s, e)), i) for s, e, i in self.hits(norm.text))
        found = {(*_span(r.to_original(s, e)), i) for r in norm.readings for s, e, i in self.hits(r.text)}
        if found and self.allow:
            allowed = [
                _span(r.to_original(*m.span()))
                for r in norm.readings
                for a in self.allow
                for m in a.finditer(r.text)
            ]
            found = {(s, e, i) for s, e, i in found if not any(a_s < e and s < a_e for a_s, a_e in allowed)}
        return sorted(found)


def _span(span: Span) -> tuple[int, int]:
    return span.start, span.end


def _expand(pattern: str, terms: dict[str, str]) -> str:
    """``pattern`` with every ``{name}`` replaced by that term's alternation; KeyError names an
    unknown term."""
    return _TERM_REF.sub(lambda m: terms[m.group(1)], pattern)


def _expand_compile(
    source: str, terms: dict[str, str], *, file: Path, line: int | None, where: str, unknown: str
) -> re.Pattern[str]:
    """``source`` with its terms expanded, compiled; an unknown term (``{name} <unknown>``) or a bad
    regex raises :class:`ConfigError` naming ``where`` and ``line``."""
    try:
        return re.compile(_expand(source, terms))
    except KeyError as exc:
        raise ConfigError(file, f"{where}: {{{exc.args[0]}}} {unknown}", line=line) from exc
    except re.error as exc:
        raise ConfigError(file, f"{where}: bad regex {source!r}: {exc}", line=line) from exc


def _load_terms(raw: object, *, file: Path, text: str) -> dict[str, str]:
    """``[terms]``: name -> ``(?:alt|alt|...)``, longest alternative first so evidence spans are whole
    phrases. Each alternative must compile on its own; unknown or later-defined references are refused."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(file, "[terms] must be a table of name = [alternatives]")
    header = next((no for no, ln in enumerate(text.splitlines(), 1) if ln.strip() == "[terms]"), 0)
    terms: dict[str, str] = {}
    for name, alts in raw.items():
        line = line_of(text, f"{name} =", after=header) or header or None
        if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
            raise ConfigError(file, f"term name {name!r} must be lower_snake_case", line=line)
        if not isinstance(alts, list) or not alts or not all(isinstance(a, str) and a for a in alts):
            raise ConfigError(file, f"term {name!r} must be a non-empty list of strings", line=line)
        expanded = [
            _expand_compile(
                alt,
                terms,
                file=file,
                line=line,
                where=f"term {name!r}",
                unknown="is not a term defined above it",
            ).pattern
            for alt in alts
        ]
        terms[name] = "(?:" + "|".join(sorted(expanded, key=len, reverse=True)) + ")"
    return terms


def _compile(
    raw: object, *, file: Path, text: str, where: str, list_line: int | None, terms: dict[str, str]
) -> tuple[re.Pattern[str], ...]:
    if not isinstance(raw, list) or not all(isinstance(p, str) for p in raw):
        raise ConfigError(file, f"{where} must be a list of strings", line=list_line)
    return tuple(
        _expand_compile(
            pattern,
            terms,
            file=file,
            line=line_of(text, pattern, after=list_line or 0) or list_line,
            where=where,
            unknown="is not a term in [terms]",
        )
        for pattern in raw
    )


def _patterns_of(
    entry: dict[str, object],
    earlier: Sequence[RuleList],
    *,
    file: Path,
    text: str,
    name: str,
    list_line: int | None,
    terms: dict[str, str],
) -> tuple[re.Pattern[str], ...]:
    """A list's own ``patterns``, or with ``patterns_from = "<list>.allow"`` the allow-list of a list
    defined above it (one set of regexes serving twice: what excuses a hit there is what this list finds)."""
    source = entry.get("patterns_from")
    if source is None:
        return _compile(
            entry.get("patterns"), file=file, text=text, where=f"list {name!r} patterns", list_line=list_line, terms=terms
        )
    if "patterns" in entry:
        raise ConfigError(file, f"list {name!r}: give patterns or patterns_from, not both", line=list_line)
    of = source[: -len(".allow")] if isinstance(source, str) and source.endswith(".allow") else None
    found = next((rl for rl in earlier if rl.name == of), None)
    if found is None or not found.allow:
        raise ConfigError(
            file,
            f"list {name!r}: patterns_from must name the allow-list of a list defined above it, as "
            f"'<list>.allow' (got {source!r})",
            line=list_line,
        )
    return found.allow


def load_rules(path: Path | str = DEFAULT_RULES) -> list[RuleList]:
    """Parse and compile ``rules.toml``; a bad regex or entry raises :class:`ConfigError` naming
    the file, the line and the reason."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
        data = tomllib.loads(text)
    except OSError as exc:
        raise ConfigError(file, f"cannot read: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(file, f"not valid TOML: {exc}", line=getattr(exc, "lineno", None)) from exc
    lists = data.get("list")
    if not isinstance(lists, list) or not lists:
        raise ConfigError(file, "expected one or more [[list]] tables")
    terms = _load_terms(data.get("terms"), file=file, text=text)
    out: list[RuleList] = []
    seen: set[str] = set()
    search_from = 0
    for entry in lists:
        name = entry.get("name")
        if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", name):
            raise ConfigError(file, f"list name {name!r} must be lower_snake_case", line=None)
        list_line = line_of(text, f'"{name}"', after=search_from)
        search_from = list_line or search_from
        if name in seen:
            raise ConfigError(file, f"duplicate list {name!r}", line=list_line)
        seen.add(name)
        action = entry.get("action")
        if action not in ACTIONS:
            raise ConfigError(file, f"list {name!r}: action must be one of {ACTIONS}", line=list_line)
        profiles = entry.get("profiles", ["*"])
        spaces = entry.get("spaces", [])
        if not isinstance(profiles, list) or not isinstance(spaces, list):
            raise ConfigError(file, f"list {name!r}: profiles and spaces must be lists", line=list_line)
        near_raw = entry.get("near")
        if near_raw is not None and not isinstance(near_raw, str):
            raise ConfigError(file, f"list {name!r}: near must be one regex string", line=list_line)
        near = None
        if near_raw is not None:
            (near,) = _compile(
                [near_raw],
                file=file,
                text=text,
                where=f"list {name!r} near",
                list_line=list_line,
                terms=terms,
            )
        out.append(
            RuleList(
                name=name,
                action=action,
                profiles=frozenset(map(str, profiles)),
                spaces=frozenset(map(str, spaces)),
                patterns=_patterns_of(entry, out, file=file, text=text, name=name, list_line=list_line, terms=terms),
                allow=_compile(
                    entry.get("allow", []),
                    file=file,
                    text=text,
                    where=f"list {name!r} allow",
                    list_line=list_line,
                    terms=terms,
                ),
                near=near,
            )
        )
    return out


class RulesDetector:
    """Regex word lists with allow-lists. Signals: ``detector="rules"``, ``label="rules.<list>"``."""

    name = "rules"

    def __init__(self, lists: Sequence[RuleList]):
        self.lists = list(lists)

    @classmethod
    def from_file(cls, path: Path | str = DEFAULT_RULES) -> RulesDetector:
        return cls(load_rules(path))

    def detect(self, batch: Sequence[ScreenItem]) -> list[list[Signal]]:
        return [self._one(item) for item in batch]

    def _one(self, item: ScreenItem) -> list[Signal]:
        signals = []
        msg, norm = item.message, item.norm
        for rl in self.lists:
            if not rl.applies(msg.profile, msg.space):
                continue
            hits = rl.hits_in(norm)
            if not hits:
                continue
            merged: list[list[int]] = []
            for s, e, _ in hits:  # sorted by start: merge overlapping hits into one span
                if merged and s < merged[-1][1]:
                    merged[-1][1] = max(merged[-1][1], e)
                else:
                    merged.append([s, e])
            spans: list[Span] = [Span(s, e) for s, e in merged]
            signals.append(
                Signal(
                    detector="rules",
                    label=f"rules.{rl.name}",
                    score=1.0,
                    evidence=tuple(spans),
                    rule=f"{rl.name}[{hits[0][2]}]",
                    action=rl.action,
                )
            )
        return signals
