"""The shipped support model: the artefact, its card, its frozen-set scores, and how the pipeline
uses it (a real ONNX Runtime session on the committed int8 model; nothing faked)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from moderation.detectors.behaviour import BehaviourDetector
from moderation.detectors.crisis import CrisisDetector, InMemoryContextStore
from moderation.detectors.support_model import (
    DEFAULT_CARD,
    DEFAULT_MODEL,
    MAX_WINDOWS,
    SupportModel,
    SupportModelError,
    Thresholds,
    load_card,
    model_figures,
    model_text,
)
from moderation.labels import HEADS, data_files, digest, load_labelled
from moderation.pipeline import Pipeline
from tests.moderation.factories import DISTRESSED_BURST, T0, message

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "bench" / "data" / "corpus"
FROZEN_SETS = ("bench/data/frozen_eval", "bench/data/frozen_eval_2", "bench/data/frozen_eval_3")


@pytest.fixture(scope="module")
def model() -> SupportModel:
    return SupportModel()


@pytest.fixture(scope="module")
def card() -> dict:
    return load_card()


def test_the_artefact_is_small_and_says_what_it_was_trained_on(card):
    assert DEFAULT_MODEL.stat().st_size <= 30 * 1024 * 1024
    assert card["heads"] == {k: list(v) for k, v in HEADS.items()}
    files = data_files(CORPUS)
    assert card["corpus_digest"] == digest(files), "the corpus changed since the model was trained"
    assert card["corpus_records"] == len(load_labelled(files)) >= 6000
    assert sorted(card["frozen"]) == sorted(FROZEN_SETS)
    for name in FROZEN_SETS:
        assert card["frozen"][name]["digest"] == digest(data_files(ROOT / name)), f"{name} changed"
    assert card["dedupe"]["cutoff_cosine"] == 0.9
    assert 0 < card["thresholds"]["alert"] < 1


def moved(got: dict[str, dict[str, int]], want: dict[str, dict[str, int]]) -> int:
    """How many records sit in another cell of a confusion table than recorded."""
    cells = {(r, c) for table in (got, want) for r, row in table.items() for c in row}
    return sum(abs(got.get(r, {}).get(c, 0) - want.get(r, {}).get(c, 0)) for r, c in cells) // 2


def test_moved_counts_each_record_once():
    want = {"none": {"none": 5, "high": 1}, "high": {"high": 4}}
    assert moved(want, want) == 0
    assert moved({"none": {"none": 4, "high": 2}, "high": {"high": 4}}, want) == 1
    assert moved({"none": {"none": 6}, "high": {"high": 3, "imminent": 1}}, want) == 2


@pytest.mark.parametrize("name", FROZEN_SETS)
def test_the_artefact_reproduces_its_recorded_frozen_set_scores(model, card, name):
    """Int8 arithmetic is exact on every x86 CPU (``session.x64quantprecision``); the float operations
    around it (AVX-512 or AVX2 kernels, activation quantisation) differ in the last bits between CPUs,
    which can move a record lying on a threshold. Seen: none on the two AVX-512 CPUs, 2 records of one
    head and set on an AVX2 CPU, sums within 0.071; saturating kernels had moved 1 to 3 per head and
    set. A wrong artefact, tokeniser or threshold moves dozens."""
    frozen = load_labelled(data_files(ROOT / name))
    assert len(frozen) >= 600
    got = model_figures(frozen, model.predict([model_text(r) for r in frozen]), model.thresholds)
    want = card["frozen"][name]["figures"]
    assert got["records"] == want["records"]
    for key in ("tier", "harm", "target"):
        assert moved(got[key], want[key]) <= 2, (key, got[key], want[key])
    assert got["p_alert_sum"] == pytest.approx(want["p_alert_sum"], abs=0.15)
    assert got["p_harm_sum"] == pytest.approx(want["p_harm_sum"], abs=0.15)


def test_outputs_are_probabilities_and_cached_per_text(model):
    [a, b] = model.predict(["good morning everyone", "good morning everyone"])
    for head in HEADS:
        assert a.head(head).sum() == pytest.approx(1.0, abs=1e-3)
    assert a is b  # one pass, then the cache


def test_a_long_ramble_is_read_in_windows_and_the_risk_at_its_end_counts(model):
    ramble = " ".join(["work was long and the bus was late again and my feet hurt."] * 60)
    assert len(model.windows(ramble)) > 1
    assert len(model.windows(ramble)) <= MAX_WINDOWS
    end = ramble + " anyway I've taken all the pills I had saved and I'm starting to feel sleepy. goodbye"
    [calm, risky] = model.predict([ramble, end])
    assert risky.p_alert > calm.p_alert
    assert model.thresholds.tier(risky.tier) != "none"


def test_harm_score_puts_the_operating_point_at_one_half():
    th = Thresholds(alert=0.3, high=0.4, imminent=0.5, harm=0.2)
    assert th.harm_score(0.2) == pytest.approx(0.5)
    assert th.harm_score(0.0) == 0.0
    assert th.harm_score(1.0) == pytest.approx(1.0)
    xs = np.linspace(0, 1, 50)
    assert all(np.diff([th.harm_score(float(x)) for x in xs]) >= 0)


def test_a_card_that_does_not_match_the_scheme_is_refused_by_name(tmp_path):
    bad = tmp_path / "card.json"
    raw = json.loads(DEFAULT_CARD.read_text())
    raw["heads"]["harm"] = raw["heads"]["harm"][:-1]
    bad.write_text(json.dumps(raw))
    with pytest.raises(SupportModelError, match=str(bad)):
        load_card(bad)
    with pytest.raises(SupportModelError, match="missing"):
        SupportModel(tmp_path / "nope.onnx", DEFAULT_CARD)


# ---------------------------------------------------------------- the pipeline with the real model


@pytest.fixture(scope="module")
def pipeline(model) -> Pipeline:
    return Pipeline.from_config(model=model)


def fresh(pipeline: Pipeline) -> Pipeline:
    """The same detectors and model with fresh behaviour and context stores (messages here share
    senders and times, and must not be read together across tests)."""
    detectors = []
    for d in pipeline.detectors:
        if isinstance(d, BehaviourDetector):
            d = BehaviourDetector(pipeline.policy.behaviour)
        elif isinstance(d, CrisisDetector):
            d = CrisisDetector(d.config, d.model, InMemoryContextStore())
        detectors.append(d)
    return Pipeline(detectors, pipeline.policy)


def test_a_distressed_member_sending_eight_messages_in_twenty_seconds_is_heard_not_muted(pipeline):
    pipe = fresh(pipeline)
    burst = DISTRESSED_BURST
    verdicts = [
        pipe.screen([message(t, sender="@burst:localhost", sent_at=T0 + timedelta(seconds=2.5 * i))])[0]
        for i, t in enumerate(burst)
    ]
    for v in verdicts:
        assert not v.blocked
        assert not v.of_kind("mute")
        assert not v.of_kind("redact")
        assert not v.of_kind("warn")
    assert any(v.of_kind("escalate") for v in verdicts)
    flood = [d for v in verdicts for d in v.of_kind("flag") if d.reason.startswith("behaviour.flood")]
    assert flood
    assert "not mute: crisis" in flood[0].reason


def _said_in_turn(pipeline: Pipeline, said: list[str]) -> list:
    pipe = fresh(pipeline)
    return [
        pipe.screen([message(t, sender="@ctx:localhost", sent_at=T0 + timedelta(seconds=20 * i))])[0]
        for i, t in enumerate(said)
    ]


def test_the_issues_goodbye_sequence_escalates_as_imminent(pipeline):
    # The issue's example. Since the sixth model, a bare farewell to the group with thanks and no
    # reason is read as imminent on its own too (its corpus has unexplained goodbyes as final acts,
    # beside benign twins that give a reason); the pair below shows context raising the tier.
    said = ["I've made up my mind.", "Tonight.", "Goodbye all, thank you for everything"]
    verdicts = _said_in_turn(pipeline, said)
    assert [d.tier for d in verdicts[-1].of_kind("escalate")] == ["imminent"]
    assert not any(v.blocked for v in verdicts)


@pytest.mark.parametrize("said", [["I've made up my mind.", "Tonight."]])
def test_messages_read_together_reach_imminent(pipeline, said):
    alone = [fresh(pipeline).screen([message(t)])[0] for t in said]
    assert all(d.tier != "imminent" for v in alone for d in v.of_kind("escalate")), (
        "no single one is imminent"
    )
    verdicts = _said_in_turn(pipeline, said)
    assert [d.tier for d in verdicts[-1].of_kind("escalate")] == ["imminent"]


@pytest.mark.parametrize(
    "text",
    [
        "honestly nobody here would miss you, you know what to do",
        "you're so close to your goal weight, just skip dinner again, nobody will notice",
        "hope you relapse and lose everything again",
        # the groups of test_speaking_up_for_a_group_is_not_refused_as_hate, attacked
        "immigrants are ruining this country, send the lot of them back",
        "trans folk need therapy to fix them, not new pronouns",
        "people in wheelchairs are a burden on the rest of us and should stay out of this group",
    ],
)
def test_support_group_harm_aimed_at_a_member_is_refused_with_a_kind_message(pipeline, text):
    [v] = fresh(pipeline).screen([message(text)])
    assert v.blocked
    [block] = v.of_kind("block")
    assert block.reason.startswith(("harm.", "rules."))
    assert block.message
    assert "wasn't sent" in block.message


@pytest.mark.parametrize(
    "text",
    [
        "my dad used to tell me I was a worthless waste of space and I still hear it",
        "I killed it at my interview today, so fucking proud of myself",
        "ending it with him tonight, eight years is enough",
        "took my evening meds, two sertraline as prescribed, then bed",
    ],
)
def test_quotes_venting_and_routines_pass_without_an_alert(pipeline, text):
    [v] = fresh(pipeline).screen([message(text)])
    assert not v.blocked
    assert not v.of_kind("escalate")


def test_the_escalation_benchs_crisis_texts_all_escalate_and_its_ordinary_texts_do_not(pipeline):
    # bench/escalation.py times alerts for these: a model that stops alerting on one of them (the
    # fourth model did, on "by the time anyone reads this I'll be gone") must not ship
    from bench.escalation import CRISIS_TEXTS, ORDINARY_TEXTS

    for text in CRISIS_TEXTS:
        [v] = fresh(pipeline).screen([message(text)])
        assert [d.tier for d in v.of_kind("escalate")] == ["imminent"], text
        assert not v.blocked, text
    for text in ORDINARY_TEXTS:
        [v] = fresh(pipeline).screen([message(text)])
        assert not v.of_kind("escalate"), text
        assert not v.blocked, text


def _write_folder(folder: Path, n: int, tag: str) -> None:
    folder.mkdir(parents=True)
    rows = []
    for i in range(n):
        tier = ("none", "high")[i % 2]
        rows.append(
            {
                "text": f"{tag} message number {i}",
                "tier": tier,
                "category": None if tier == "none" else "ideation",
                "harm": "none",
                "target": "self",
                "kind": "test",
                "voice": "plain",
            }
        )
    (folder / "part-01.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")


def test_each_corpus_generation_is_split_on_its_own(tmp_path):
    """Folders written after a model was trained must not reshuffle its validation split: the old and
    the new model are compared on the same held-out records."""
    import random

    from bench.train_support_model import SEED, generation, load_corpus, split_generations

    assert [generation(Path(f"c/{name}/part-01.jsonl")) for name in ("t1-a", "t23-b", "t24-c", "t9-d")] == [
        0,
        0,
        1,
        0,
    ]
    _write_folder(tmp_path / "t2-old", 60, "old")

    def validation(corpus: Path) -> list[str]:
        tagged = load_corpus(corpus)
        return [
            r.text for r in split_generations(tagged, [r for _, r in tagged], 0.1, random.Random(SEED))[1]
        ]

    before = validation(tmp_path)
    _write_folder(tmp_path / "t24-new", 60, "new")
    after = validation(tmp_path)
    assert len(before) == 6
    assert [t for t in after if t.startswith("old")] == before
    assert len([t for t in after if t.startswith("new")]) == 6


@pytest.mark.parametrize(
    "text",
    [
        # a validation record (corpus t24-short-words-that-sound-alike): wish_harm about one's own body
        "I hope this chest pain is the big one",
        "I hope the plane I'm on tomorrow goes down",
    ],
)
def test_wishing_harm_on_oneself_is_not_refused_as_wishing_harm_on_others(pipeline, text):
    """harm.wish_harm needs a target here (policy ``needs_target``): wishing one's own death is
    passive ideation, never silenced; wishing it on a member is refused (the test above)."""
    [v] = fresh(pipeline).screen([message(text)])
    assert any(s.label == "harm.wish_harm" for s in v.signals)
    assert not any(d.kind in ("block", "redact", "mute") for d in v.dispositions)


def test_a_question_about_an_overdose_already_taken_is_not_refused_as_a_method_tip(pipeline):
    """Written for the ninth model (corpus_next t32, development data the shipped model never trained
    on): the model reads it just under its alert and as a method tip. Close to the alert, the harm
    reading goes to a moderator (``POSSIBLY_AT_RISK`` in the policy) instead of refusing the member."""
    text = "serious q if youve already swallowed them is there any point telling someone? asking bc its kinda late now"
    [v] = fresh(pipeline).screen([message(text)])
    assert any(s.label == "harm.method_tip" for s in v.signals)
    assert any(s.label == "crisis.possible" for s in v.signals)
    assert not any(d.kind in ("block", "redact", "mute") for d in v.dispositions)
    assert any(d.kind == "flag" and "possibly at risk" in d.reason for d in v.dispositions)


@pytest.mark.xfail(
    strict=True,
    reason="known defect of the shipped (eighth) model: its harm head reads a general statement about an "
    "identity group as hate whatever it says (README, 'Crisis and harm detection'); a tenth model trained "
    "with 1,201 more records of such talk still did. Strict: this test fails the suite once it passes, "
    "so that whoever fixes it turns it into a plain test",
)
@pytest.mark.parametrize(
    "text",
    [
        # written for this test (2026-12-08): the eighth model refused each of them as hate
        "Black women in this group deserve to be listened to",
        "Refugees are people, not numbers",
        "Trans people deserve proper healthcare",
        "Jewish people have every right to feel safe here",
        "Immigrants make this country better",
    ],
)
def test_speaking_up_for_a_group_is_not_refused_as_hate(pipeline, text):
    """Identity talk passes (Hearth's rules for the people it serves): naming a group is not attacking
    it."""
    [v] = fresh(pipeline).screen([message(text)])
    assert not v.blocked, [s.label for s in v.signals]
    assert not v.of_kind("escalate")


def test_validation_is_deduplicated_against_the_sets_the_shipped_model_was(card):
    """A frozen set written after the shipped model was trained must not change its validation split
    (deduplicating against it moved 140 of the eighth's records); training new models uses every set."""
    from bench.train_support_model import FROZEN_SETS, shipped_frozen_sets

    assert sorted(str(p.relative_to(ROOT)) for p in shipped_frozen_sets()) == sorted(card["frozen"])
    assert ROOT / "bench" / "data" / "frozen_eval_groups" in FROZEN_SETS
    assert ROOT / "bench" / "data" / "frozen_eval_groups" not in shipped_frozen_sets()
    assert shipped_frozen_sets({}) == list(FROZEN_SETS)
