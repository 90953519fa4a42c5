from datetime import timedelta

import numpy as np
import pytest

from moderation.detectors.crisis import (
    ContextWindow,
    CrisisDetector,
    InMemoryContextStore,
    Recent,
    load_crisis_config,
)
from moderation.detectors.support_model import Scores, Thresholds
from moderation.errors import ConfigError
from moderation.labels import CATEGORIES, CONTEXT_JOIN
from moderation.normalize import normalize
from tests.moderation.factories import T0, item

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
    ("I want to die", "ideation"),
    ("everyone would be better off without me", "ideation"),
    ("I don't want to be alive anymore", "ideation"),
    ("I've been thinking about killing myself a lot", "ideation"),
    ("I've been stockpiling my pills", "plan_or_means"),
    ("I cut myself again last night", "self_harm"),
]
MODERATE = [
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
    return CrisisDetector.from_files()


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
def test_hard_negatives_raise_nothing(rules_only, text):
    assert rules_only.detect([item(text)])[0] == []


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


# ---------------------------------------------------------------- the learned model's part (a small fake)


class KeywordModel:
    """Stands in for the support model in these pure domain tests: the tier comes from a keyword."""

    def __init__(self) -> None:
        self.thresholds = Thresholds(alert=0.5, high=0.5, imminent=0.5, harm=0.5)
        self.seen: list[str] = []

    def predict(self, texts):
        self.seen.extend(texts)
        out = []
        for t in texts:
            tier = np.array([0.97, 0.01, 0.01, 0.01], dtype=np.float32)
            if "gloom" in t:
                tier = np.array([0.02, 0.02, 0.06, 0.90], dtype=np.float32)
            elif "uneasy" in t:
                tier = np.array([0.25, 0.05, 0.10, 0.60], dtype=np.float32)
            elif "tonight" in t and "ready" in t and "goodbye" in t:  # only when read together
                tier = np.array([0.05, 0.05, 0.10, 0.80], dtype=np.float32)
            category = np.zeros(len(CATEGORIES), dtype=np.float32)
            category[CATEGORIES.index("plan_or_means")] = 1.0
            out.append(
                Scores(tier, category, np.eye(10, dtype=np.float32)[0], np.eye(5, dtype=np.float32)[0])
            )
        return out


@pytest.fixture
def learned(rules_only):
    return CrisisDetector(rules_only.config, KeywordModel(), InMemoryContextStore())


def test_the_model_may_say_imminent_where_no_rule_matches(learned):
    [sig] = learned.detect([item("a gloom feeling")])[0]
    assert (sig.tier, sig.category, sig.rule) == ("imminent", "plan_or_means", "learned")
    assert learned.detect([item("fine day", sender="@someone.else:localhost")])[0] == []


def test_the_rules_stay_a_floor_the_model_cannot_lower(learned):
    [sig] = learned.detect([item("I'm standing on the bridge now")])[0]
    assert (sig.tier, sig.category) == ("imminent", "attempt_in_progress")
    assert "learned" not in sig.rule
    [a] = learned.assess([normalize("I cut myself again last night")])
    assert (a.tier, a.learned_tier) == ("high", "none")


def test_a_reading_close_to_the_alert_is_carried_without_a_tier(rules_only):
    model = KeywordModel()
    model.thresholds = Thresholds(alert=0.8, high=0.5, imminent=0.5, harm=0.5)
    det = CrisisDetector(rules_only.config, model, InMemoryContextStore())
    # P(tier >= moderate) 0.75 under an alert at 0.8: no alert, but the policy may read how close it was
    [sig] = det.detect([item("an uneasy day")])[0]
    assert (sig.label, sig.tier, sig.category, sig.rule) == (
        "crisis.possible",
        None,
        "plan_or_means",
        "learned",
    )
    assert sig.score == pytest.approx(0.75)
    # far from it (0.03): nothing at all; at it: the alert itself
    assert det.detect([item("fine day", sender="@b:localhost")])[0] == []
    [sig] = det.detect([item("a gloom feeling", sender="@c:localhost")])[0]
    assert (sig.label, sig.tier) == ("crisis.plan_or_means", "imminent")


def _said(body, *, seconds, sender="@member:localhost", room="!room:localhost"):
    return item(body, sent_at=T0 + timedelta(seconds=seconds), sender=sender, room_id=room)


def test_a_members_recent_messages_are_read_together(learned):
    msgs = ["I've made up my mind.", "everything is ready", "tonight. goodbye all"]
    out = [learned.detect([_said(m, seconds=20 * i)])[0] for i, m in enumerate(msgs)]
    assert out[0] == []
    assert out[1] == []
    [sig] = out[2]
    assert (sig.tier, sig.rule) == ("imminent", "context")
    assert learned.model.seen[-1] == CONTEXT_JOIN.join(normalize(m).text for m in msgs)


def test_context_is_per_member_per_room_and_within_the_window(learned):
    learned.detect([_said("everything is ready", seconds=0)])
    # another member, another room, or after the window: not read together
    assert learned.detect([_said("tonight. goodbye all", seconds=10, sender="@other:localhost")])[0] == []
    assert learned.detect([_said("tonight. goodbye all", seconds=10, room="!elsewhere:localhost")])[0] == []
    assert learned.detect([_said("tonight. goodbye all", seconds=11 * 60)])[0] == []


def test_context_store_forgets_what_is_past_the_window():
    store = InMemoryContextStore(sweep_every=10**6)
    window = ContextWindow(minutes=10, messages=2)
    for i in range(4):
        earlier = store.record(("r", "u"), Recent(f"$e{i}", T0 + timedelta(minutes=i), f"m{i}"), window)
    assert [r.text for r in earlier] == ["m1", "m2"]  # at most two earlier ones, oldest first
    assert store.record(
        ("r", "u"), Recent("$e3", T0 + timedelta(minutes=3), "m3"), window
    )  # same event: once
    assert store.sweep(T0 + timedelta(minutes=30)) == 1
    assert len(store) == 0


def test_context_without_a_model_is_off(rules_only):
    assert rules_only.detect([_said("everything is ready", seconds=0)])[0] == []
    assert rules_only.context is not None
    assert len(rules_only.context) == 0


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("[learned]\nthreshold = 0.4\n", r"remove \[learned\]"),
        ("[context]\nwindow_minutes = -1\n", "minutes from 0 to 120"),
        ("[context]\nmessages = 2.5\n", "whole number"),
        ("[context]\nsize = 3\n", "takes window_minutes and messages"),
    ],
)
def test_context_and_learned_config_errors_name_the_key(tmp_path, body, message):
    cfg = tmp_path / "crisis.toml"
    cfg.write_text(
        '[[rule]]\nname = "x"\ngroup = "g"\ntier = "high"\ncategory = "ideation"\npatterns = ["a"]\n' + body
    )
    with pytest.raises(ConfigError, match=message) as err:
        load_crisis_config(cfg)
    assert err.value.file == str(cfg)
