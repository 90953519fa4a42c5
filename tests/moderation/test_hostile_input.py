"""Hostile input, by property: any string, lone surrogates, 64 KB messages, deeply nested HTML, bidi
overrides and zalgo, through the normaliser and through the pipeline with the shipped models, gives a
result without raising, with every detector answering (no error counted as a verdict) and in bounded
time. Bounds are generous: this runs on a loaded 2-core machine."""

from __future__ import annotations

import logging
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from moderation.detectors.toxicity import load_toxicity_detector
from moderation.normalize import _BIDI_AND_ZERO_WIDTH, normalize
from moderation.pipeline import Pipeline
from tests.moderation.factories import message

NORMALIZE_SECONDS = 5.0  # one call, at most 64 KB (about 0.25 s measured on a quiet machine)
SCREEN_SECONDS = 60.0  # one batch of up to three messages through every model

BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"
COMBINING = [chr(c) for c in range(0x0300, 0x0370)]

# Every code point, lone surrogates included (hypothesis leaves category Cs out unless asked).
any_char = st.characters(codec=None, categories=None)
lone_surrogate = st.integers(0xD800, 0xDFFF).map(chr)
any_text = st.text(st.one_of(any_char, lone_surrogate), max_size=200)


@st.composite
def zalgo(draw: st.DrawFn) -> str:
    base = draw(st.text(st.characters(min_codepoint=0x20, max_codepoint=0x2FF), min_size=1, max_size=30))
    marks = st.lists(st.sampled_from(COMBINING), max_size=40)
    return "".join(c + "".join(draw(marks)) for c in base)


@st.composite
def bidi(draw: st.DrawFn) -> str:
    parts = draw(st.lists(st.one_of(st.sampled_from(list(BIDI)), any_text), min_size=1, max_size=10))
    return "".join(parts)


@st.composite
def huge(draw: st.DrawFn) -> str:
    """Up to 64 KB: a drawn piece repeated (hypothesis draws short strings by itself)."""
    piece = draw(st.one_of(any_text, zalgo(), bidi()).filter(bool))
    return (piece * (65536 // len(piece) + 1))[: draw(st.integers(1024, 65536))]


@st.composite
def nested_html(draw: st.DrawFn) -> str:
    tag = draw(
        st.sampled_from(["div", "b", "blockquote", "mx-reply", "li", "span", "p", "a href='x'", "font"])
    )
    depth = draw(st.integers(1, 5000))
    inner = draw(st.one_of(any_text, zalgo(), bidi()))
    closed = draw(st.booleans())
    name = tag.split()[0]
    return f"<{tag}>" * depth + inner + (f"</{name}>" * depth if closed else "")


# stretched letters and I, 1 or | for "l": the normaliser adds readings of them (``variants``)
stretched = st.text(st.sampled_from("kiIl1|ys \u200bK\uff29"), max_size=300)
bodies = st.one_of(any_text, zalgo(), bidi(), huge(), stretched)
formatted = st.one_of(
    st.none(), nested_html(), any_text, st.text(st.sampled_from("<>/&;#x0123abc \"'"), max_size=300)
)


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.large_base_example],
)
@given(body=bodies, html=formatted)
def test_the_normaliser_folds_any_input_and_maps_every_character_back(body, html):
    started = time.perf_counter()
    norm = normalize(body, html)
    assert time.perf_counter() - started < NORMALIZE_SECONDS
    for reading in norm.readings:
        assert reading.original == norm.original
        assert len(reading.offsets) == len(reading.text)
        assert all(0 <= o < len(norm.original) for o in reading.offsets)
        assert list(reading.offsets) == sorted(reading.offsets)
        # nothing invisible or unencodable is left to hide a word or break a model, a hash or a database
        assert not any(c in _BIDI_AND_ZERO_WIDTH or 0xD800 <= ord(c) <= 0xDFFF for c in reading.text)
        reading.text.encode("utf-8")
    norm.original.encode("utf-8")


@pytest.fixture(scope="module")
def shipped() -> Pipeline:
    """Every detector Hearth runs, with the shipped weights: support model, offline toxicity scorer."""
    tox, _ = load_toxicity_detector(None, logging.getLogger("test.hostile"), runtime="torch")
    return Pipeline.from_config(extra=[tox])


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.function_scoped_fixture,
        HealthCheck.large_base_example,
    ],
)
@given(batch=st.lists(st.tuples(bodies, formatted), min_size=1, max_size=3))
def test_the_pipeline_gives_every_message_a_verdict_from_every_detector(shipped, batch):
    messages = [message(body, formatted_body=html) for body, html in batch]
    started = time.perf_counter()
    verdicts = shipped.screen(messages)
    assert time.perf_counter() - started < SCREEN_SECONDS
    assert [v.event_id for v in verdicts] == [m.event_id for m in messages]
    for v in verdicts:
        assert v.errors == {}, v.errors  # a detector that raised would only flag: that is not an answer
        assert v.dispositions
