"""Normaliser: fold a message into a canonical form for matching, keeping a map back to the original.

Steps, each applied per character so every folded character remembers where it came from:
HTML ``formatted_body`` reduced to text (reply fallbacks dropped), Unicode NFKC, zero-width and bidi
controls and lone surrogates removed, diacritics stripped, lookalike letters folded to Latin from
Unicode's confusables data where a word passes for Latin (``_fold_lookalikes``), leetspeak folded, case
folded, whitespace collapsed, letters repeated three or more times squeezed to two, words
spelled out letter by letter ("r e t a r d s", "k.i.l.l") joined.

A message whose letters are stretched ("kiiiilll", "diiie") or that writes a capital I, a 1 or a pipe
for an "l" inside a lower-case word ("kiII", "ki11", "ki||") also gets other readings, ``variants``
(see ``_variants``): the rules match them too, the models read only the main folded text.

The folded text is only ever used for matching; the original is kept for display and evidence.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterator
from html import unescape
from html.parser import HTMLParser

from confusable_homoglyphs import utils as confusables_data

from moderation.types import NormalizedText

# Lookalikes come from Unicode's confusables data (UTS #39), shipped inside the confusable-homoglyphs
# package (see ``_latin_lookalikes``). These are spellings and typography, not lookalikes, so the data
# lacks them; they fold everywhere.
SPELLINGS: dict[str, str] = {
    "æ": "ae",
    "œ": "oe",
    "\u2018": "'",
    "\u2019": "'",
    "\u201c": '"',
    "\u201d": '"',
    "\u2013": "-",
    "\u2014": "-",
}
# Letters that pass for Latin ones in a word that mixes them with Latin ("kіlл", "ᴋys") although UTS #39
# does not list them as confusable. Used only in such mixed words: a word wholly in Cyrillic or Greek
# ("привет") is a word of that language, not a disguise.
MIXED_SCRIPT_LOOKALIKES: dict[str, str] = {
    "б": "b",
    "и": "u",
    "л": "n",
    "п": "n",
    "ч": "4",
    "ш": "w",
    "δ": "d",
    "ξ": "e",
    "π": "n",
    "ς": "c",
    "φ": "o",
    "ω": "w",
    "ᴋ": "k",
    "ʟ": "l",
}


def _without_marks(s: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFD", s) if unicodedata.category(c) != "Mn")


def _latin_lookalikes() -> dict[str, str]:
    """Every non-ASCII letter or digit that looks like one ASCII letter or digit, from the UTS #39
    confusables data: ``"і" -> "i"``, ``"ѕ" -> "s"``, ``"ꓳ" -> "o"``, ``"ø" -> "o"``.

    The data pairs each character with its prototypes, not always Latin ones (Cyrillic "в" is listed
    beside small capital "ʙ", which is listed beside "B"), so the pairs are followed until an ASCII
    character is reached, nearest first; combining marks on the way are dropped (``"ł" -> "l̸" ->
    "l"``), as the normaliser drops them. A lower-case character is also read through its capital
    (``"т"`` looks like ``"T"``). Keys keep their case (capital upsilon looks like "Y", small upsilon
    like "u"; the normaliser looks a character up before case folding), values are lower-case ASCII; a
    letter prefers a letter (``"з"`` is ``"3"`` only because no letter is nearer).
    """
    data: dict[str, list[dict[str, str]]] = confusables_data.load("confusables.json")
    graph: dict[str, set[str]] = {}
    for ch, glyphs in data.items():
        for g in glyphs:
            a, b = _without_marks(ch), _without_marks(g["c"])
            graph.setdefault(a, set()).add(b)
            graph.setdefault(b, set()).add(a)

    def ascii_of(start: str, letter: bool) -> str | None:
        seen, frontier = {start}, [start]
        while frontier:
            found = [c for c in frontier if len(c) == 1 and c.isascii() and c.isalnum()]
            if found:
                found.sort(key=lambda c: (c.isalpha() != letter, c.isupper(), c))
                return found[0].lower()
            frontier = sorted({n for c in frontier for n in graph.get(c, ()) if n not in seen})
            seen.update(frontier)
        return None

    table: dict[str, str] = {}
    for ch in graph:
        if len(ch) != 1 or ch.isascii() or unicodedata.category(ch)[0] not in "LN":
            continue
        letter = ch.isalpha()
        target = ascii_of(ch, letter) or (ascii_of(ch.upper(), letter) if ch.upper() != ch else None)
        if target is not None:
            table[ch] = target
    return table


LATIN_LOOKALIKES: dict[str, str] = _latin_lookalikes()

# Leetspeak, folded only inside a word (see ``_fold_leet``): numbers like "30" or "2am" stay numbers.
LEET: dict[str, str] = {
    "0": "o",
    "1": "i",
    "3": "e",
    "4": "a",
    "5": "s",
    "7": "t",
    "8": "b",
    "9": "g",
    "$": "s",
    "@": "a",
    "!": "i",
    "|": "l",
    "+": "t",
    "€": "e",
    "£": "l",
}

_BIDI_AND_ZERO_WIDTH = set(
    "\u200b\u200c\u200d\u200e\u200f\u2060\u2061\u2062\u2063\u2064\ufeff\u00ad\u180e\u034f\u061c"
    "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)
# ... and U+FFFD, which stands for what could not be read (a lone surrogate, see ``scrub_surrogates``).
_INVISIBLE = _BIDI_AND_ZERO_WIDTH | {"\ufffd"}
_NUMBERISH = re.compile(
    r"^[\d.,:/%x-]+$|^\d+(?:[.,]\d+)?(?:mg|g|kg|ml|l|am|pm|st|nd|rd|th|s|x|k|h|hrs?|mins?|yrs?)$"
)
_REPLY_FALLBACK = re.compile(r"\A(?:>[^\n]*\n)+\n")
_BLOCK_TAGS = {
    "p",
    "div",
    "br",
    "li",
    "ul",
    "ol",
    "blockquote",
    "pre",
    "tr",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
}
_ALNUM = re.compile(r"[^0-9a-z]+")


class _HTMLText(HTMLParser):
    """Matrix ``formatted_body`` to text: tags stripped, ``<mx-reply>`` dropped, blocks become newlines."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "mx-reply":
            self._skip += 1
        elif tag in _BLOCK_TAGS and not self._skip:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "mx-reply":
            self._skip = max(0, self._skip - 1)
        elif tag in _BLOCK_TAGS and not self._skip:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    """Visible text of an HTML ``formatted_body`` (reply fallback dropped, entities decoded)."""
    parser = _HTMLText()
    try:
        parser.feed(html)
        parser.close()
    except Exception:  # malformed HTML: fall back to a crude strip rather than fail the screen
        return unescape(re.sub(r"<[^>]*>", " ", html))
    return re.sub(r"\n{3,}", "\n\n", "".join(parser.parts)).strip("\n")


def _strip_reply_fallback(body: str) -> int:
    """Length of the ``> <@user> quoted`` reply fallback at the start of a plain body, or 0."""
    m = _REPLY_FALLBACK.match(body)
    return m.end() if m else 0


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def scrub_surrogates(text: str) -> str:
    """``text`` with lone surrogates (JSON lets ``"\\ud800"`` through; UTF-8 cannot encode it, so a
    database, a tokenizer or a hash would fail on it) replaced by U+FFFD, one for one."""
    return _LONE_SURROGATE.sub("\ufffd", text)


def _fold_char(ch: str) -> list[tuple[str, str | None]]:
    """One original character to its folded characters (possibly none or several), each with the
    Latin letter it passes for when it is a lookalike. Combining marks (diacritics, zalgo) go before
    case folding, which would turn some into letters (U+0345 becomes "ι")."""
    if ch in _INVISIBLE or unicodedata.category(ch) in ("Cf", "Cc", "Cs") and ch not in "\n\t":
        return []
    compatible = _without_marks(unicodedata.normalize("NFKC", ch))
    # A lookalike is read as it was written too: NFKC turns "ϲ" into "ς", which has no Latin reading,
    # and "ͺ" into a space, which would split the word it disguises.
    as_written = LATIN_LOOKALIKES.get(ch)
    if as_written is not None and not (len(compatible) == 1 and compatible.isalnum()):
        return [(as_written, as_written)]
    out: list[tuple[str, str | None]] = []
    for c in compatible:
        folded = _without_marks(c.casefold())
        latin = LATIN_LOOKALIKES.get(c, as_written) if len(folded) == 1 else None
        out += [(e, latin) for d in folded for e in SPELLINGS.get(d, d)]
    return out


def _words(chars: list[str]) -> Iterator[tuple[int, int]]:
    """(start, end) of every run of characters that are not white space."""
    n = len(chars)
    i = 0
    while i < n:
        if chars[i].isspace():
            i += 1
            continue
        j = i
        while j < n and not chars[j].isspace():
            j += 1
        yield i, j
        i = j


def _fold_lookalikes(chars: list[str], latin: list[str | None]) -> None:
    """Fold lookalike letters to Latin in place, word by word, where it matters for matching.

    A word that holds an ASCII letter or digit mixes scripts: every lookalike in it folds (``"kіll"``,
    ``"ᴋys"``). A word with none folds only when each of its letters has a UTS #39 Latin lookalike, so
    it could be read as Latin (``"кус"`` -> ``"kyc"``); a word of another language stays as written.
    Each character folds to one, so offsets stay as they are.
    """
    for i, j in _words(chars):
        foreign = [k for k in range(i, j) if not chars[k].isascii() and chars[k].isalnum()]
        if foreign:
            mixed = any(chars[k].isascii() and chars[k].isalnum() for k in range(i, j))
            if mixed:
                for k in foreign:
                    chars[k] = latin[k] or MIXED_SCRIPT_LOOKALIKES.get(chars[k], chars[k])
            elif all(latin[k] for k in foreign if chars[k].isalpha()):
                for k in foreign:
                    chars[k] = latin[k] or chars[k]


def _fold_leet(chars: list[str]) -> None:
    """Fold leetspeak in place, word by word: ``k1ll`` -> ``kill``, ``y0u`` -> ``you``, ``$hit`` -> ``shit``.

    A token counts as a word when it holds a letter and is not a number or a quantity ("30", "2am",
    "30mg"), so evidence like doses and times survives folding.
    """
    for i, j in _words(chars):
        token = "".join(chars[i:j])
        core = token.strip(".,;:?\"'()[]*_~")
        if any(c.isalpha() for c in token) and not _NUMBERISH.match(core) and ":" not in token:
            for k in range(i, j):
                c = chars[k]
                if c in LEET:
                    left = chars[k - 1] if k > i else ""
                    right = chars[k + 1] if k + 1 < j else ""
                    near = (left.isalpha() or left in LEET) or (right.isalpha() or right in LEET)
                    if c in "!|+" and not (left.isalpha() and right.isalpha()):
                        continue  # "help!" and "a+b" stay; only "k!ll" folds
                    if near:
                        chars[k] = LEET[c]


def _fold_letters(source: str, start: int) -> tuple[list[str], list[int]]:
    """Every character of ``source[start:]`` folded (compatibility forms, marks, case, lookalikes,
    leetspeak), each with the index it came from; white space and repeats still as written."""
    chars: list[str] = []
    offsets: list[int] = []
    latin: list[str | None] = []
    for idx in range(start, len(source)):
        for c, reading in _fold_char(source[idx]):
            chars.append(c)
            offsets.append(idx)
            latin.append(reading)
    _fold_lookalikes(chars, latin)
    _fold_leet(chars)
    return chars, offsets


def _fold(source: str, start: int) -> tuple[list[str], list[int]]:
    return _squeeze_to_two(*_fold_letters(source, start))


def _squeeze_to_two(chars: list[str], offsets: list[int]) -> tuple[list[str], list[int]]:
    # collapse whitespace runs to one space, squeeze letters repeated 3+ times to 2
    out: list[str] = []
    outo: list[int] = []
    for c, o in zip(chars, offsets, strict=True):
        if c.isspace():
            if not out or out[-1] == " ":
                continue
            c = " "
        elif c.isalpha() and len(out) >= 2 and out[-1] == c and out[-2] == c:
            continue
        out.append(c)
        outo.append(o)
    while out and out[-1] == " ":
        out.pop()
        outo.pop()
    return _join_spaced_letters(out, outo)


# A word spelled out letter by letter ("r e t a r d s", "f.a.g.g.o.t", "k-i-l-l") is joined back together.
# Four letters at least, one separator throughout: "u r a legend" (text speak) and initials such as
# "e.g." stay as they are; spelled-out abbreviations ("p.t.s.d") become the abbreviation.
_SPACED = re.compile(
    r"(?<![0-9a-z*_\-])[a-z](?P<sep>[ .\-_*\u00b7]{1,3})[a-z](?:(?P=sep)[a-z]){2,}(?![0-9a-z*_\-])"
)


def _join_spaced_letters(chars: list[str], offsets: list[int]) -> tuple[list[str], list[int]]:
    text = "".join(chars)
    if not _SPACED.search(text):
        return chars, offsets
    out: list[str] = []
    outo: list[int] = []
    last = 0
    for m in _SPACED.finditer(text):
        out += chars[last : m.start()]
        outo += offsets[last : m.start()]
        for k in range(m.start(), m.end()):
            if chars[k].isalpha():
                out.append(chars[k])
                outo.append(offsets[k])
        last = m.end()
    return out + chars[last:], outo + offsets[last:]


# A capital I, a digit 1 or a pipe written for a lower-case "l" ("kiII", "ki11", "ki||"): in many fonts
# they look alike. With their lookalikes (full-width, mathematical, Cyrillic and Greek capitals, UTS #39).
L_STAND_INS: frozenset[str] = frozenset("I1|\uff5c") | frozenset(
    ch for ch, latin in LATIN_LOOKALIKES.items() if latin in ("i", "l", "1") and not ch.islower()
)
# Cheap test that a message may hold one after a letter of the same word ("1100", "2011" do not): one
# try per word, from its start, so a long word costs its length once.
_L_STAND_IN_IN_WORD = re.compile(
    r"(?<!\S)(?:(?![^\W\d_])\S)*+[^\W\d_]\S*?[" + re.escape("".join(sorted(L_STAND_INS))) + "]"
)
# A letter written three times or more in a row: stretched ("kiiill", "diiie", "soooo").
_STRETCHED = re.compile(r"([^\W\d_])\1{2,}")
_SPACE_RUN = re.compile(r"\s+")
_VOWELS = frozenset("aeiouy")


def _read_l_stand_ins(source: str, chars: list[str], offsets: list[int]) -> bool:
    """In place: capital I, 1 or pipe (``L_STAND_INS``) that follow a letter of the same word that is
    not a capital become "l" (``"kiII"`` -> ``"kill"``, ``"ki11"`` -> ``"kill"``, ``"yourseIf"`` ->
    ``"yourself"``), unless that would put three l in a row (``"kIll"`` is "kill" already). At the start
    of a word or after a capital they keep their reading: "I", "I'll", "Illinois", "III", "1100",
    "BILL". True when anything changed."""
    changed = False
    after_letter = False
    n = len(chars)
    k = 0
    while k < n:
        written = source[offsets[k]]
        if written not in L_STAND_INS:
            after_letter = chars[k].isalpha() and not written.isupper()
            k += 1
            continue
        j = k
        while j < n and source[offsets[j]] in L_STAND_INS:
            j += 1
        if after_letter:
            ls = j - k
            at = k - 1
            while at >= 0 and chars[at] == "l" and ls <= 2:
                ls, at = ls + 1, at - 1
            at = j
            while at < n and chars[at] == "l" and ls <= 2:
                ls, at = ls + 1, at + 1
            if ls <= 2 and any(c != "l" for c in chars[k:j]):
                chars[k:j] = ["l"] * (j - k)
                changed = True
        k = j
    return changed


def _collapse_space(chars: list[str], offsets: list[int]) -> tuple[list[str], list[int]]:
    """White space runs to one space, none at either end (as ``_squeeze_to_two`` does)."""
    out: list[str] = []
    outo: list[int] = []
    last = 0
    for m in _SPACE_RUN.finditer("".join(chars)):
        out += chars[last : m.start()]
        outo += offsets[last : m.start()]
        if out:
            out.append(" ")
            outo.append(offsets[m.start()])
        last = m.end()
    out += chars[last:]
    outo += offsets[last:]
    if out and out[-1] == " ":
        out.pop()
        outo.pop()
    return out, outo


# Letters of Roman numerals: a word made only of them is left as the main text reads it ("III", "XXX").
_ROMAN = frozenset("ivxlcdm")


def _squeeze(chars: list[str], offsets: list[int], keep: Callable[[str], int]) -> tuple[list[str], list[int]]:
    """Every letter written three times or more in a row kept ``keep(letter)`` times; two in a word
    made only of Roman numeral letters ("III", "xxx", "mmm"). A run that ends a word keeps the offsets
    of its last letters, others of their first, so an evidence span that ends or starts with the word
    covers the whole of it in the original."""
    text = "".join(chars)
    out: list[str] = []
    outo: list[int] = []
    last = 0
    for m in _STRETCHED.finditer(text):
        a, b = m.span()
        start, end = a, b
        while start and text[start - 1].isalpha():
            start -= 1
        while end < len(text) and text[end].isalpha():
            end += 1
        n = 2 if _ROMAN.issuperset(text[start:end]) else keep(text[a])
        out += chars[last:a] + chars[a : a + n]
        outo += offsets[last:a] + (offsets[b - n : b] if end == b else offsets[a : a + n])
        last = b
    return out + chars[last:], outo + offsets[last:]


def _variants(
    source: str, letters: list[str], offsets: list[int], text: str
) -> list[tuple[list[str], list[int]]]:
    """Other readings of a message, for matching beside its folded ``text``, when it stretches letters
    or writes a capital I, 1 or pipe for an "l" inside a word (``_read_l_stand_ins``); none otherwise.

    The main text keeps two of a stretched letter ("kiiiilll" -> "kiill"): right for doubled letters
    ("killll", "stilll"), wrong for single ones. Which a stretched letter stands for is not known, so
    two readings are added: every stretched letter once ("diiie" -> "die", "selllf" -> "self";
    "kiiill" -> "kill", a double stays), and stretched vowels once, consonants twice ("kiiiilll" ->
    "kill"). Both start again from ``letters`` (folded, not yet squeezed); readings equal to ``text``
    or to each other are left out. Ordinary words keep their meaning: a word written with single or
    double letters has no stretch to read ("will", "still", "I'll", "Illinois", "III").
    """
    chars = letters
    l_read = False
    if _L_STAND_IN_IN_WORD.search(source):
        chars = list(letters)
        l_read = _read_l_stand_ins(source, chars, offsets)
    if not (l_read or _STRETCHED.search(text) or _STRETCHED.search("".join(letters))):
        return []
    base, base_offsets = _join_spaced_letters(*_collapse_space(chars, offsets))
    readings: list[tuple[list[str], list[int]]] = []
    seen = {text}
    for keep in (lambda _: 1, lambda c: 1 if c in _VOWELS else 2):
        v_chars, v_offsets = _squeeze(base, base_offsets, keep)
        v_text = "".join(v_chars)
        if v_text not in seen:
            seen.add(v_text)
            readings.append((v_chars, v_offsets))
    return readings


def normalize(body: str, formatted_body: str | None = None) -> NormalizedText:
    """Fold a message for matching; ``offsets`` map every folded character back to ``original``.

    ``original`` is what the sender's readers see: the text of ``formatted_body`` when there is one
    (HTML stripped, reply fallback dropped), else ``body``. When the plain ``body`` says something
    different from the HTML (a client showing ``body`` would show other words), it is appended after
    a blank line so both are screened. Lone surrogates become U+FFFD in ``original`` and nothing in
    ``text``.
    """
    body = scrub_surrogates(body)
    formatted_body = scrub_surrogates(formatted_body) if formatted_body else formatted_body
    if formatted_body:
        original = html_to_text(formatted_body)
        plain_start = _strip_reply_fallback(body)
        plain = body[plain_start:]
        html_chars, _ = _fold(original, 0)
        body_chars, _ = _fold(plain, 0)
        if _ALNUM.sub("", "".join(body_chars)) != _ALNUM.sub("", "".join(html_chars)):
            original = f"{original}\n\n{plain}"
        source, start = original, 0
    else:
        original = body
        source, start = body, _strip_reply_fallback(body)
    letters, letter_offsets = _fold_letters(source, start)
    chars, offsets = _squeeze_to_two(letters, letter_offsets)
    text = "".join(chars)
    variants = tuple(
        NormalizedText(original=original, text="".join(v_chars), offsets=tuple(v_offsets))
        for v_chars, v_offsets in _variants(source, letters, letter_offsets, text)
    )
    return NormalizedText(original=original, text=text, offsets=tuple(offsets), variants=variants)
