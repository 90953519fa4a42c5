import pytest

from moderation.normalize import normalize


@pytest.mark.parametrize(
    ("raw", "folded"),
    [
        ("go k1ll urself", "go kill urself"),
        ("KYS", "kys"),
        ("k\u200by\u200bs", "kys"),  # zero-width spaces
        ("\u202ekys\u202c", "kys"),  # bidi override
        ("Кіll yоursеlf", "kill yourself"),  # Cyrillic lookalikes
        ("ｋｙｓ", "kys"),  # full-width (NFKC)
        ("y0u are a l0$er", "you are a loser"),
        ("$hit happens", "shit happens"),
        ("k!ll", "kill"),
        ("kiiiiiilllll", "kiill"),
        ("nooooo   way", "noo way"),
        ("kïll", "kill"),  # diacritics
        ("r e t a r d s", "retards"),  # spelled out letter by letter
        ("M u s l i m s are scum", "muslims are scum"),
        ("k-i-l-l yourself", "kill yourself"),
        ("f.a.g.g.o.t", "faggot"),
        ("T - R - U - S - T", "trust"),
    ],
)
def test_obfuscations_fold(raw, folded):
    assert normalize(raw).text == folded


# text speak and initials are not words spelled out: fewer than four letters, or mixed separators
@pytest.mark.parametrize(
    "raw",
    [
        "I took 30 tablets",
        "at 2am",
        "30mg",
        "3 years clean",
        "help!",
        "call 999",
        "u r a legend",
        "e.g. this",
        "u r a b*tch",
        "self-harm",
        "a.k.a. sam",
        "plan a or b",
    ],
)
def test_numbers_and_punctuation_survive(raw):
    assert normalize(raw).text == raw.lower()


def test_every_folded_char_maps_back_to_the_original():
    raw = "Hey \u200bY0U  ARE a l0oooser"
    n = normalize(raw)
    assert len(n.offsets) == len(n.text)
    start = n.text.index("you")
    span = n.to_original(start, start + 3)
    assert raw[span.start : span.end] == "Y0U"
    start = n.text.index("looser")  # l0oooser: leet, then squeezed to two
    span = n.to_original(start, start + len("looser"))
    assert raw[span.start : span.end] == "l0oooser"


def test_a_word_spelled_out_maps_back_to_all_its_letters():
    raw = "you are all r e t a r d s, honestly"
    n = normalize(raw)
    start = n.text.index("retards")
    span = n.to_original(start, start + len("retards"))
    assert raw[span.start : span.end] == "r e t a r d s"
    assert n.text == "you are all retards, honestly"


def test_html_reply_fallback_dropped_and_tags_stripped():
    html = "<mx-reply><blockquote>kys</blockquote></mx-reply><p>hello <b>friend</b></p>"
    n = normalize("> <@a:b> kys\n\nhello **friend**", html)
    assert "kys" not in n.text
    assert n.text == "hello friend"


def test_plain_reply_fallback_dropped_with_offsets_into_body():
    body = "> <@a:localhost> kys\n\nthanks"
    n = normalize(body)
    assert n.text == "thanks"
    span = n.to_original(0, 6)
    assert body[span.start : span.end] == "thanks"


def test_body_that_differs_from_html_is_screened_too():
    n = normalize("kys", "<p>have a nice day</p>")
    assert "kys" in n.text
    assert "have a nice day" in n.text
