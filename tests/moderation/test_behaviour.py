from datetime import timedelta

from moderation.detectors.behaviour import BehaviourDetector, BehaviourLimits, InMemoryBehaviourStore
from tests.moderation.factories import T0, item


def labels(det, it):
    return [s.label for s in det.detect([it])[0]]


def test_flood_per_member_uses_sent_at():
    det = BehaviourDetector(BehaviourLimits(flood_messages=3, flood_seconds=10))
    assert labels(det, item("a", sent_at=T0)) == []
    assert labels(det, item("b", sent_at=T0 + timedelta(seconds=2))) == []
    assert labels(det, item("c", sent_at=T0 + timedelta(seconds=4))) == ["behaviour.flood"]
    # another member is not affected
    assert labels(det, item("d", sent_at=T0 + timedelta(seconds=5), sender="@other:localhost")) == []
    # after the window the member is fine again
    assert labels(det, item("e", sent_at=T0 + timedelta(seconds=30))) == []


def test_repeats_of_the_same_normalised_text():
    det = BehaviourDetector(BehaviourLimits(repeat_count=3, repeat_seconds=60, flood_messages=99))
    texts = ["Buy now", "BUY  NOW", "buy n0w"]
    out = [labels(det, item(t, sent_at=T0 + timedelta(seconds=i * 5))) for i, t in enumerate(texts)]
    assert out == [[], [], ["behaviour.repeat"]]


def test_same_event_counted_once():
    det = BehaviourDetector(BehaviourLimits(flood_messages=2, flood_seconds=10))
    it = item("x", sent_at=T0)
    assert labels(det, it) == []
    assert labels(det, it) == []


def test_mention_spam():
    det = BehaviourDetector(BehaviourLimits(mention_limit=5))
    assert labels(det, item("hi all", mentions=6)) == ["behaviour.mentions"]
    assert labels(det, item("hi", mentions=2)) == []


def test_links_and_media_from_new_members_only():
    det = BehaviourDetector(BehaviourLimits(new_member_minutes=60))
    text = "check https://example.com now"
    new = item(text, sender_joined_at=T0 - timedelta(minutes=5))
    [sig] = det.detect([new])[0]
    assert sig.label == "behaviour.new_member_link"
    assert text[sig.evidence[0].start : sig.evidence[0].end].startswith("https://")
    old = item(text, sender_joined_at=T0 - timedelta(days=3), sender="@old:localhost")
    assert labels(det, old) == []
    media = item("photo.jpg", msgtype="m.image", sender_joined_at=T0, sender="@new2:localhost")
    assert labels(det, media) == ["behaviour.new_member_media"]


def test_store_is_injectable_and_keeps_no_text():
    store = InMemoryBehaviourStore()
    det = BehaviourDetector(store=store)
    det.detect([item("something private")])
    [seen] = store.record("@member:localhost", next(iter(store._by_sender["@member:localhost"])), T0)
    assert "private" not in repr(seen)


def test_media_from_another_homeserver_whatever_the_trust_period():
    det = BehaviourDetector(BehaviourLimits(new_member_minutes=60))
    long_ago = T0 - timedelta(days=30)
    remote = item("dot.png", msgtype="m.image", sender_joined_at=long_ago, sender_remote=True)
    assert labels(det, remote) == ["behaviour.remote_media"]
    assert labels(det, item("just words", sender_joined_at=long_ago, sender_remote=True)) == []
    local = item("dot.png", msgtype="m.image", sender_joined_at=long_ago, sender="@old2:localhost")
    assert labels(det, local) == []
