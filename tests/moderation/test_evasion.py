"""An evasion corpus of the shipped rules: each message the rules block, disguised by spacing, lookalike
letters drawn from Unicode's confusables data, leetspeak, zero-width and bidi characters, combining
marks, full-width and mathematical letters, and mixes of these, is still caught by the same rule; so is
each with a letter stretched ("kiiiill") or an "l" written as a capital I, a 1 or a pipe ("kiII"),
while look-alikes derived from the same rules (doubled letters, "I'll", "III", quoted or rejected
incitement stretched) are not flagged. Disguises are generated (seeded), so the corpus is the same on
every run."""

from __future__ import annotations

import random
import unicodedata
from collections import defaultdict

import pytest

from moderation.detectors.rules import RulesDetector
from moderation.normalize import LATIN_LOOKALIKES
from tests.moderation.factories import item

# What the shipped rules block or flag, the rule, and the word to spell out letter by letter (the
# normaliser joins four letters or more, and "kys").
CAUGHT = [
    ("kys", "incitement", "kys"),
    ("go kill yourself", "incitement", "kill"),
    ("you should kill yourself", "incitement", "yourself"),
    ("go die", "incitement", None),
    ("you are a worthless piece of shit", "abuse", "piece"),
    ("fuck you", "abuse", "fuck"),
    ("you're such an idiot", "abuse", "idiot"),
    ("nobody would miss you", "cruelty", "nobody"),
]

# Latin letter -> every non-ASCII letter the confusables data says looks like it. Characters that NFKC
# makes ASCII are left out: they are compatibility forms, folded before lookalikes are (fullwidth "Ｉ" is
# an "i", although the data lists it beside "l").
LOOKALIKES: dict[str, list[str]] = defaultdict(list)
for _char, _latin in sorted(LATIN_LOOKALIKES.items()):
    if _latin.isalpha() and _char.isalpha() and not unicodedata.normalize("NFKC", _char).isascii():
        LOOKALIKES[_latin].append(_char)

ZERO_WIDTH = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad"]
BIDI = ["\u202e", "\u202d", "\u2066", "\u2067", "\u200f"]
LEET = {"a": "4", "e": "3", "i": "1", "o": "0", "s": "5", "t": "7"}


def _letters(text: str, each) -> str:  # type: ignore[no-untyped-def]
    return "".join(each(c) if c.isalpha() else c for c in text)


def disguises(text: str, word: str | None, rng: random.Random) -> dict[str, str]:
    """Named disguises of ``text``; ``word`` is spelled out letter by letter."""
    out = {}
    if word is not None:
        for name, sep in (("spaced", " "), ("dotted", "."), ("dashed", "-")):
            out[f"{name} {word}"] = text.replace(word, sep.join(word), 1)
    out |= {
        "leet": " ".join(_letters(w, lambda c: LEET.get(c, c)) if len(w) > 1 else w for w in text.split(" ")),
        "capitals": text.upper(),
        "full-width": "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text),
        "mathematical bold": _letters(
            text, lambda c: unicodedata.lookup(f"MATHEMATICAL BOLD SMALL {c.upper()}")
        ),
        "zalgo": _letters(text, lambda c: c + "".join(chr(rng.randrange(0x300, 0x370)) for _ in range(3))),
        "diacritics": _letters(text, lambda c: unicodedata.normalize("NFC", c + "\u0308")),
    }
    for name in ZERO_WIDTH:
        out[f"U+{ord(name):04X} between letters"] = "".join(c + name for c in text)
    for name in BIDI:
        out[f"U+{ord(name):04X} around"] = f"{name}{text}\u202c"
    # Homoglyphs: one letter swapped, every letter swapped, and swapped letters mixed with leetspeak
    # and zero-width joiners; several draws of lookalikes each.
    for n in range(6):
        one = rng.randrange(len(text))
        while not text[one].isalpha():
            one = rng.randrange(len(text))
        swap = rng.choice(LOOKALIKES[text[one]])
        out[f"one lookalike {swap!r}"] = text[:one] + swap + text[one + 1 :]
        every = _letters(text, lambda c: rng.choice(LOOKALIKES[c]) if LOOKALIKES[c] else c)
        out[f"every letter a lookalike, draw {n}"] = every
    mixed = _letters(text, lambda c: rng.choice([c, *LOOKALIKES[c][:8]]) + "\u200d")
    out["lookalikes, leetspeak and joiners"] = mixed
    return out


CORPUS = [
    (f"{rule}: {name}", disguised, rule)
    for i, (text, rule, word) in enumerate(CAUGHT)
    for name, disguised in disguises(text, word, random.Random(19 + i)).items()
]


@pytest.fixture(scope="module")
def rules() -> RulesDetector:
    return RulesDetector.from_file()


def test_the_corpus_is_large_and_uses_the_confusables_data():
    assert len(CORPUS) >= 250
    assert all(len(LOOKALIKES[c]) >= 3 for c in "acdeghijklmnopqrstuvwxyz")


@pytest.mark.parametrize(("name", "text", "rule"), CORPUS, ids=[n for n, _, _ in CORPUS])
def test_every_disguise_is_caught_by_the_same_rule(rules, name, text, rule):
    labels = [s.label for s in rules.detect([item(text)])[0]]
    assert f"rules.{rule}" in labels, (text, labels)


@pytest.mark.parametrize(
    "word", ["привет", "спасибо", "Ελλάδα", "καλημέρα", "שלום", "مرحبا", "こんにちは", "안녕하세요", "नमस्ते"]
)
def test_a_word_of_another_language_is_left_as_written(word):
    folded = item(word).norm.text
    assert not any(c.isascii() and c.isalpha() for c in folded), folded


# Letters stretched ("kiiill", "diiie") and a capital I, a 1 or a pipe written for "l" inside a word
# ("kiII", "ki11", "ki||"): the normaliser adds readings of them that the rules match too.
STRETCHED_AND_L = [
    ("kiiill yourself", "incitement", "kiiill yourself"),
    ("kiiiilll urself", "incitement", "kiiiilll urself"),
    ("lol kiiiilll yourself", "incitement", "kiiiilll yourself"),
    ("kiiiilll yourselllf", "incitement", "kiiiilll yourselllf"),
    ("k i i i l l yourself", "incitement", "k i i i l l yourself"),
    ("go diiie", "incitement", "go diiie"),
    ("you should diiiieeee", "incitement", "you should diiiieeee"),
    ("kyyyyys", "incitement", "kyyyyys"),
    ("kiII yourself", "incitement", "kiII yourself"),
    ("ki11 yourself", "incitement", "ki11 yourself"),
    ("ki|| yourself", "incitement", "ki|| yourself"),
    ("KiII yourself", "incitement", "KiII yourself"),
    ("kil1 yourself", "incitement", "kil1 yourself"),
    ("kill yourseIf", "incitement", "kill yourseIf"),
    ("ki\u200bI\u200bI yourself", "incitement", "ki\u200bI\u200bI yourself"),
    ("ki\uff29\uff29 yourself", "incitement", "ki\uff29\uff29 yourself"),  # full-width capital I
    ("go kiii11 yourseIf", "incitement", "go kiii11 yourseIf"),
    ("fuuuuck youuu", "abuse", "fuuuuck youuu"),
    ("you're such an idiooooot", "abuse", "you're such an idiooooot"),
    ("you are a worthlesss piece of shiiit", "abuse", "you are a worthlesss piece of shiiit"),
    ("nooobody wouId miss you", "cruelty", "nooobody wouId miss you"),
]


def _stretched(text: str) -> list[tuple[str, str]]:
    """``text`` with each letter in turn written four times (one name, one text per letter)."""
    return [
        (f"{text[k]!r} at {k} x4", text[:k] + text[k] * 4 + text[k + 1 :])
        for k, c in enumerate(text)
        if c.isalpha()
    ]


def _l_written_as(text: str, stand_in: str) -> str:
    """Every "l" that follows a lower-case letter written as ``stand_in``."""
    return "".join(stand_in if c == "l" and k and text[k - 1].isalpha() else c for k, c in enumerate(text))


STRETCH_CORPUS = (
    [
        (f"{rule}: {text!r} with {name}", disguised, rule)
        for text, rule, _ in CAUGHT
        for name, disguised in _stretched(text)
    ]
    + [
        (f"{rule}: {text!r} with l written {stand_in!r}", _l_written_as(text, stand_in), rule)
        for text, rule, _ in [
            *CAUGHT,
            ("kill yourself", "incitement", None),
            ("you are a loser", "abuse", None),
        ]
        for stand_in in ("I", "1", "|", "\u0406")  # the last: Cyrillic capital I
        if "l" in text[1:]
    ]
)

# Look-alikes that must keep their meaning: ordinary words with doubled letters, stretched words of
# everyday chat, a capital I or 1 where it means I or one, and the allowed phrasings of the rules above
# (counter-speech, quoting, figures of speech) stretched or written with "I" for "l".
# Ordinary words whose doubled letters, capital I or 1 must keep their meaning (no other reading).
ORDINARY_WORDS = [
    "kill",
    "will",
    "still",
    "skill",
    "all",
    "bill",
    "I'll",
    "Illinois",
    "III",
    "II",
    "I  I  I",
    "1100 people",
    "BILL",
    "feeling ill",
    "xxx",
]

BENIGN = [
    *ORDINARY_WORDS,
    "feeling iII today",
    "goooood morning",
    "soooo tired",
    "sooo many skiIls to learn",
    "I wiII see you aII tomorrow",
    "stiII here, stiII fighting",
    "Chapter III of the workbook",
    "Henry VIII was awful lol",
    "Win11 update broke my laptop",
    "found a job on LinkedIn",
    "McIlroy won the golf",
    "every1 here is lovely",
    "you'll kiiiill it tomorrow",
    "kiII it at the exam x",
    "dont kiiiilll urself over exams",
    "don't kiII yourself over it",
    "he told me to kiII myself",
    "they kept telling me to kiiiill myself",
    "'kiiill yourself' is never ok",
    "people who tell others to kyyyys are the worst",
    "fuuuuck youuu anxiety",
    "I could diiie of embarrassment",
    "nooo one missed the bus",
    "the kill count in my game lol",
    "yesss we did it",
]


@pytest.mark.parametrize(
    ("text", "rule", "evidence"), STRETCHED_AND_L, ids=[t for t, _, _ in STRETCHED_AND_L]
)
def test_stretched_letters_and_i_for_l_are_caught_with_evidence_in_the_original(rules, text, rule, evidence):
    signals = {s.label: s for s in rules.detect([item(text)])[0]}
    assert f"rules.{rule}" in signals, (text, item(text).norm)
    spans = signals[f"rules.{rule}"].evidence
    assert [text[s.start : s.end] for s in spans] == [evidence]


@pytest.mark.parametrize(("name", "text", "rule"), STRETCH_CORPUS, ids=[n for n, _, _ in STRETCH_CORPUS])
def test_every_letter_stretched_and_every_l_written_as_i_is_caught(rules, name, text, rule):
    labels = [s.label for s in rules.detect([item(text)])[0]]
    assert f"rules.{rule}" in labels, (text, labels)


@pytest.mark.parametrize("text", BENIGN)
def test_look_alikes_are_not_flagged(rules, text):
    assert rules.detect([item(text)])[0] == [], text


@pytest.mark.parametrize("text", [*ORDINARY_WORDS, "VIII", "Bill and I will"])
def test_ordinary_words_get_no_other_reading(text):
    assert item(text).norm.variants == ()
