"""Harm detector: the learned model's reading of the harm a message does to other people, and whom
its risk, pain or harm is about.

Support-group harms are labels of their own (``harm.<type>``, :data:`moderation.labels.HARMS`):
incitement to self-harm (direct and indirect), method tips, pro-eating-disorder encouragement,
wishing harm or relapse, insults and harassment, hate, threats, sexual harassment, and drug-sale or
scam spam, each with its own row and kind message in ``policy.toml``. A ``harm.<type>`` signal's
score is the model's ``P(harm)`` mapped so that 0.5 is the operating point its card validated (the
policy's default threshold; the harm head itself was taught that venting about one's own abuser or
one's own life harms no reader). Every message also gets one ``target.<who>`` signal (self, reader,
group, third_party, none: the most likely), whose ``score`` is the model's probability that the
message is aimed at people here, the reader or a group: the policy lets a general toxicity label
(Detoxify's insult, threat, ...) refuse a message only when it is. Shares the model (and its per-text cache) with the crisis detector, so each
message is read once.
"""

from __future__ import annotations

from collections.abc import Sequence

from moderation.detectors.support_model import SupportModel
from moderation.labels import TARGETS
from moderation.types import ScreenItem, Signal

_READER = TARGETS.index("reader")
_GROUP = TARGETS.index("group")
REPORT_FLOOR = 0.2
"""A ``harm.*`` signal is reported (and stored with the decision) from this calibrated score up."""


class HarmDetector:
    """Emits ``harm.<type>`` (when the model sees harm to others) and ``target.<who>`` per message."""

    name = "harm"

    def __init__(self, model: SupportModel) -> None:
        self.model = model

    def detect(self, batch: Sequence[ScreenItem]) -> list[list[Signal]]:
        texts = [item.norm.text if item.norm.text.strip() else item.norm.original for item in batch]
        out: list[list[Signal]] = []
        for s in self.model.predict(texts):
            who = TARGETS[int(s.target.argmax())]
            here = float(s.target[_READER] + s.target[_GROUP])
            signals = [Signal(detector=self.name, label=f"target.{who}", score=round(here, 4), rule=who)]
            kind, _ = s.harm_type()
            score = self.model.thresholds.harm_score(s.p_harm)
            if score >= REPORT_FLOOR:
                signals.append(
                    Signal(detector=self.name, label=f"harm.{kind}", score=round(score, 4), rule=kind)
                )
            out.append(signals)
        return out
