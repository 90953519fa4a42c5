import numpy as np
import pytest

from moderation.detectors.crisis import (
    CrisisDetector,
    HashingEmbedder,
    LearnedCrisisModel,
    load_crisis_config,
    load_examples,
)
from moderation.errors import ConfigError
from moderation.normalize import normalize
from tests.moderation.factories import item

IMMINENT = [
    ("I have the pills ready and I'm going to take them all tonight", "plan_or_means"),
    ("I've written letters to everyone, this is goodbye", "plan_or_means"),
    ("I'm standing on the bridge now", "attempt_in_progress"),
    ("I already took 30 tablets", "attempt_in_progress"),
    ("I've taken all my sleeping pills", "attempt_in_progress"),
    ("I won't be here tomorrow. tell my mum I'm sorry", "plan_or_means"),
]
HIGH = [
    ("I want to kill myself", "ideation"),
    ("I've been thinking about killing myself a lot", "ideation"),
    ("I've been stockpiling my pills", "plan_or_means"),
    ("I cut myself again last night", "self_harm"),
]
MODERATE = [
    ("I want to die", "ideation"),
    ("everyone would be better off without me", "ideation"),
    ("I don't want to be alive anymore", "ideation"),
    ("the urge to cut is so strong", "self_harm"),
    ("my husband hits me", "abuse_disclosure"),
    ("my friend says she wants to kill herself", "concern_for_other"),
    ("I'm going to kill him", "harm_to_others"),
]
HARD_NEGATIVES = [
    "I'm not suicidal",
    "I'm not suicidal, just exhausted",
    "I would never kill myself",
    "I won't hurt myself, I promise",
    "no plans to end my life, just venting",
    "Years ago I tried to kill myself",
    "I used to self-harm, 3 years clean",
    "when I was a teenager I wanted to die, it got better",
    "this commute is killing me",
    "I could murder a coffee",
    "dying of laughter",
    "I could die of embarrassment",
    "he told me to kill myself",
    "my ex used to tell me everyone would be better off without me",
    "my brother died by suicide last year",
    "my dad took his own life and I miss him",
    "what are warning signs of suicide?",
    "how can I support a friend who is self harming?",
    "I have my concert tickets ready for tonight",
    "I took my meds this morning",
]


@pytest.fixture(scope="module")
def rules_only():
    return CrisisDetector.from_files(examples=None)


@pytest.fixture(scope="module")
def with_fast_learned():
    return CrisisDetector.from_files(embedder=HashingEmbedder(2**9))


@pytest.mark.parametrize(("text", "category"), IMMINENT)
def test_imminent_without_the_word_suicide(rules_only, text, category):
    [sig] = rules_only.detect([item(text)])[0]
    assert (sig.tier, sig.category, sig.label) == ("imminent", category, f"crisis.{category}")
    assert sig.detector == "crisis"
    assert sig.evidence


@pytest.mark.parametrize(("text", "category"), HIGH)
def test_high(rules_only, text, category):
    [sig] = rules_only.detect([item(text)])[0]
    assert (sig.tier, sig.category) == ("high", category)


@pytest.mark.parametrize(("text", "category"), MODERATE)
def test_moderate(rules_only, text, category):
    [sig] = rules_only.detect([item(text)])[0]
    assert (sig.tier, sig.category) == ("moderate", category)


@pytest.mark.parametrize("text", HARD_NEGATIVES)
def test_hard_negatives_raise_nothing(with_fast_learned, text):
    assert with_fast_learned.detect([item(text)])[0] == []


def test_suppression_is_explained(rules_only):
    [a] = rules_only.assess([normalize("I'm not suicidal")])
    assert a.tier == "none"
    assert any("negation" in s for s in a.suppressed)


def test_negation_does_not_hide_a_plan_in_another_clause(rules_only):
    [sig] = rules_only.detect([item("I'm not suicidal but I have the pills ready for tonight")])[0]
    assert sig.tier == "imminent"


def test_evidence_points_into_original(rules_only):
    text = "honestly... I've written LETTERS to everyone. This is goodbye"
    [sig] = rules_only.detect([item(text)])[0]
    quoted = [text[s.start : s.end].lower() for s in sig.evidence]
    assert any("this is goodbye" in q for q in quoted)


class FixedEmbedder:
    """Maps any text to a fixed vector by keyword, so the learned part is testable in isolation."""

    def encode(self, texts):
        return np.array([[1.0, 0.0] if "gloom" in t else [0.0, 1.0] for t in texts], dtype=np.float32)


def test_learned_component_fills_gaps_but_never_says_imminent(rules_only):
    from moderation.detectors.crisis import Example

    ex = [Example(f"gloom {i}", "imminent", "ideation") for i in range(10)]
    ex += [Example(f"fine {i}", "none", None) for i in range(10)]
    det = CrisisDetector(rules_only.config, LearnedCrisisModel(FixedEmbedder(), ex))
    [sig] = det.detect([item("a gloom feeling")])[0]
    assert sig.tier == "high"
    assert sig.rule == "learned"
    assert det.detect([item("fine day")])[0] == []
    # the learned part stays quiet when a suppressor matched anywhere
    assert det.detect([item("gloom, but years ago")])[0] == []


def test_learned_training_is_deterministic():
    ex = load_examples()
    a = LearnedCrisisModel(HashingEmbedder(2**9), ex)
    b = LearnedCrisisModel(HashingEmbedder(2**9), ex)
    texts = ["i feel so alone tonight", "what a lovely day"]
    for (pa, ca), (pb, cb) in zip(a.predict(texts), b.predict(texts), strict=True):
        assert np.allclose(pa, pb)
        assert ca == cb
    assert a.threshold == b.threshold


def test_bad_crisis_regex_refused_with_line(tmp_path):
    cfg = tmp_path / "crisis.toml"
    cfg.write_text(
        '[[rule]]\nname = "x"\ngroup = "g"\ntier = "high"\ncategory = "ideation"\npatterns = [\n  \'(oops\',\n]\n'
    )
    with pytest.raises(ConfigError) as err:
        load_crisis_config(cfg)
    assert err.value.line == 7
    assert "bad regex" in err.value.reason


def test_unknown_category_refused(tmp_path):
    cfg = tmp_path / "crisis.toml"
    cfg.write_text(
        '[[rule]]\nname = "x"\ngroup = "g"\ntier = "high"\ncategory = "sadness"\npatterns = ["a"]\n'
    )
    with pytest.raises(ConfigError, match="category"):
        load_crisis_config(cfg)


@pytest.fixture(scope="module")
def minilm():
    return CrisisDetector.from_files()  # the real all-MiniLM-L6-v2, offline


def test_real_minilm_model(minilm):
    """The shipped detector with the real embedding model: positives and hard negatives together."""
    emb = minilm.learned.embedder.encode(["hello"])
    assert emb.shape == (1, 384)
    batch = [item(t) for t, _ in IMMINENT + HIGH + MODERATE] + [item(t) for t in HARD_NEGATIVES]
    out = minilm.detect(batch)
    n_pos = len(IMMINENT) + len(HIGH) + len(MODERATE)
    assert all(out[i] for i in range(n_pos))
    assert [HARD_NEGATIVES[i - n_pos] for i in range(n_pos, len(batch)) if out[i]] == []
    assert [s.tier for s in out[0]] == ["imminent"]
