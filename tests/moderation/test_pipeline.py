from datetime import timedelta

import pytest

from moderation.detectors.behaviour import BehaviourDetector
from moderation.pipeline import Pipeline
from moderation.policy import load_policy
from moderation.types import Signal
from tests.moderation.factories import T0, message


class Boom:
    name = "toxicity"

    def detect(self, batch):
        raise RuntimeError("model exploded on: secret text")


class WrongShape:
    name = "toxicity"

    def detect(self, batch):
        return []


class FakeToxicity:
    name = "toxicity"

    def __init__(self, scores):
        self.scores = scores

    def detect(self, batch):
        return [
            [Signal("toxicity", f"toxicity.{k}", v) for k, v in self.scores.get(it.message.body, {}).items()]
            for it in batch
        ]


@pytest.fixture(scope="module")
def base():
    return Pipeline.from_config(learned=False)


def with_tox(base, tox):
    """The base detectors with a fresh behaviour store (messages here share a sender and time)."""
    fresh = [d if d.name != "behaviour" else BehaviourDetector(base.policy.behaviour) for d in base.detectors]
    return Pipeline([*fresh, tox], base.policy)


@pytest.mark.parametrize("bad", [Boom(), WrongShape()])
def test_detector_failure_is_flagged_never_silently_allowed(base, bad):
    pipe = with_tox(base, bad)
    [v] = pipe.screen([message("hello there")])
    assert set(v.errors) == {"toxicity"}
    assert "secret" not in v.errors["toxicity"]
    assert [d.kind for d in v.dispositions] == ["flag"]
    [v] = pipe.screen([message("hello there", profile="peer-strict")])
    assert v.blocked


def test_skip_counts_as_failure(base):
    [v] = base.screen([message("hi")], skip={"crisis"})
    assert v.errors == {"crisis": "skipped"}
    assert v.of_kind("flag")


def test_batch_end_to_end(base):
    pipe = with_tox(
        base, FakeToxicity({"you absolute waste": {"insult": 0.97}, "this is shit": {"obscene": 0.95}})
    )
    msgs = [
        message("go k1ll urself"),
        message("I have the pills ready and I'm going to take them all tonight"),
        message("this is shit"),
        message("you absolute waste"),
        message("my brother died by suicide last year"),
        message(
            "check https://spam.example", sender="@new:localhost", sender_joined_at=T0 - timedelta(minutes=1)
        ),
    ]
    vs = pipe.screen(msgs)
    assert [v.event_id for v in vs] == [m.event_id for m in msgs]
    assert vs[0].blocked
    assert vs[0].of_kind("block")[0].reason.startswith("rules.incitement")
    assert not vs[1].blocked
    assert vs[1].of_kind("escalate")[0].tier == "imminent"
    assert vs[1].of_kind("send_resources")
    assert [d.kind for d in vs[2].dispositions] == ["allow"]
    assert vs[3].blocked
    assert [d.kind for d in vs[4].dispositions] == ["allow"]
    assert vs[5].blocked
    for v in vs:
        assert {"normalize", "rules", "crisis", "behaviour", "toxicity", "policy", "total"} <= set(v.timings)


def test_duplicate_detector_names_refused():
    policy = load_policy()
    with pytest.raises(ValueError, match="unique"):
        Pipeline([Boom(), Boom()], policy)


def test_fast_crisis_path_escalates_from_rules_alone_and_is_quiet_otherwise():
    from datetime import UTC, datetime

    from moderation.detectors.crisis import CrisisDetector
    from moderation.pipeline import Pipeline
    from moderation.policy import Policy
    from moderation.types import Message

    pipe = Pipeline([CrisisDetector.from_files()], Policy.from_file())

    def msg(text: str) -> Message:
        return Message(event_id="$e", room_id="!r:l", sender="@u:l", body=text, sent_at=datetime.now(UTC))

    fast = pipe.fast_crisis(msg("I've just taken the whole box of paracetamol"))
    assert fast is not None
    assert [d.tier for d in fast.of_kind("escalate")] == ["imminent"]
    assert not fast.blocked
    assert pipe.fast_crisis(msg("I'm not suicidal, just tired of this commute killing me")) is None
    assert pipe.fast_crisis(msg("Thanks everyone, I slept a bit better last night.")) is None
