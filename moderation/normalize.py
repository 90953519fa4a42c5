"""Normaliser: fold a message into a canonical form for matching, keeping a map back to the original.

Steps, each applied per character so every folded character remembers where it came from:
HTML ``formatted_body`` reduced to text (reply fallbacks dropped), Unicode NFKC, zero-width and bidi
controls removed, diacritics stripped, confusable lookalikes (Cyrillic, Greek, ...) and leetspeak
folded, case folded, whitespace collapsed, letters repeated three or more times squeezed to two, words
spelled out letter by letter ("r e t a r d s", "k.i.l.l") joined.

The folded text is only ever used for matching; the original is kept for display and evidence.
"""

from __future__ import annotations

import re
import unicodedata
from html import unescape
from html.parser import HTMLParser

from moderation.types import NormalizedText

# Lookalikes that NFKC leaves alone. Keys are lower case: case folding runs first.
CONFUSABLES: dict[str, str] = {
    # Cyrillic
    "а": "a",
    "б": "b",
    "в": "b",
    "г": "r",
    "е": "e",
    "ё": "e",
    "з": "3",
    "и": "u",
    "й": "u",
    "к": "k",
    "л": "n",
    "м": "m",
    "н": "h",
    "о": "o",
    "п": "n",
    "р": "p",
    "с": "c",
    "т": "t",
    "у": "y",
    "х": "x",
    "ч": "4",
    "ш": "w",
    "ь": "b",
    "ѕ": "s",
    "і": "i",
    "ї": "i",
    "ј": "j",
    "ԁ": "d",
    "ԛ": "q",
    "ԝ": "w",
    "һ": "h",
    "ӏ": "l",
    "ү": "y",
    "ɡ": "g",
    # Greek
    "α": "a",
    "β": "b",
    "γ": "y",
    "δ": "d",
    "ε": "e",
    "ζ": "z",
    "η": "n",
    "θ": "o",
    "ι": "i",
    "κ": "k",
    "μ": "u",
    "ν": "v",
    "ξ": "e",
    "ο": "o",
    "π": "n",
    "ρ": "p",
    "σ": "o",
    "ς": "c",
    "τ": "t",
    "υ": "u",
    "φ": "o",
    "χ": "x",
    "ω": "w",
    # Latin lookalikes and IPA
    "ı": "i",
    "ł": "l",
    "ø": "o",
    "đ": "d",
    "ħ": "h",
    "ŧ": "t",
    "ß": "ss",
    "æ": "ae",
    "œ": "oe",
    "ɑ": "a",
    "ɩ": "i",
    "ʏ": "y",
    "ᴋ": "k",
    "ᴜ": "u",
    "ᴠ": "v",
    "ɪ": "i",
    "ʟ": "l",
    "ꜱ": "s",
    # punctuation lookalikes
    "\u2018": "'",
    "\u2019": "'",
    "\u201c": '"',
    "\u201d": '"',
    "\u2013": "-",
    "\u2014": "-",
}

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


def _fold_char(ch: str) -> str:
    """One original character to its folded form (possibly empty or several characters)."""
    if ch in _BIDI_AND_ZERO_WIDTH or unicodedata.category(ch) in ("Cf", "Cc") and ch not in "\n\t":
        return ""
    out = []
    for c in unicodedata.normalize("NFKC", ch).casefold():
        for d in unicodedata.normalize("NFD", c):
            if unicodedata.category(d) == "Mn":  # combining marks: diacritics, Zalgo
                continue
            out.append(CONFUSABLES.get(d, d))
    return "".join(out)


def _fold_leet(chars: list[str]) -> None:
    """Fold leetspeak in place, word by word: ``k1ll`` -> ``kill``, ``y0u`` -> ``you``, ``$hit`` -> ``shit``.

    A token counts as a word when it holds a letter and is not a number or a quantity ("30", "2am",
    "30mg"), so evidence like doses and times survives folding.
    """
    n = len(chars)
    i = 0
    while i < n:
        if chars[i].isspace():
            i += 1
            continue
        j = i
        while j < n and not chars[j].isspace():
            j += 1
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
        i = j


def _fold(source: str, start: int) -> tuple[list[str], list[int]]:
    chars: list[str] = []
    offsets: list[int] = []
    for idx in range(start, len(source)):
        for c in _fold_char(source[idx]):
            chars.append(c)
            offsets.append(idx)
    _fold_leet(chars)
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


def normalize(body: str, formatted_body: str | None = None) -> NormalizedText:
    """Fold a message for matching; ``offsets`` map every folded character back to ``original``.

    ``original`` is what the sender's readers see: the text of ``formatted_body`` when there is one
    (HTML stripped, reply fallback dropped), else ``body``. When the plain ``body`` says something
    different from the HTML (a client showing ``body`` would show other words), it is appended after
    a blank line so both are screened.
    """
    if formatted_body:
        original = html_to_text(formatted_body)
        plain_start = _strip_reply_fallback(body)
        plain = body[plain_start:]
        html_chars, _ = _fold(original, 0)
        body_chars, _ = _fold(plain, 0)
        if _ALNUM.sub("", "".join(body_chars)) != _ALNUM.sub("", "".join(html_chars)):
            original = f"{original}\n\n{plain}"
        chars, offsets = _fold(original, 0)
    else:
        original = body
        chars, offsets = _fold(body, _strip_reply_fallback(body))
    return NormalizedText(original=original, text="".join(chars), offsets=tuple(offsets))
