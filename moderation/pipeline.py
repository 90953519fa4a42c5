"""Pipeline: normalise -> every detector on the whole batch (each timed, errors caught) -> policy.

Synchronous on purpose: the bridge runs :meth:`Pipeline.screen` in a worker thread and owns any
deadline. A detector that raises, returns the wrong shape or is skipped is recorded in
``Verdict.errors``, and the policy then sends the message to human review: never silently through.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Sequence
from pathlib import Path

from moderation.detectors.behaviour import BehaviourDetector, BehaviourStore
from moderation.detectors.crisis import DEFAULT_RULES as CRISIS_RULES
from moderation.detectors.crisis import ContextStore, CrisisDetector
from moderation.detectors.harm import HarmDetector
from moderation.detectors.rules import DEFAULT_RULES, RulesDetector
from moderation.detectors.support_model import SupportModel
from moderation.normalize import normalize
from moderation.policy import DEFAULT_POLICY, Policy
from moderation.types import Detector, DetectorOutcome, Message, ScreenItem, Signal, Verdict

CONFIG_DIR = Path(__file__).resolve().parents[1] / "config"


class Pipeline:
    """Screens batches of messages. Build with the detectors to run and the policy that decides."""

    def __init__(self, detectors: Sequence[Detector], policy: Policy):
        names = [d.name for d in detectors]
        if len(set(names)) != len(names):
            raise ValueError(f"detector names must be unique: {names}")
        self.detectors = list(detectors)
        self.policy = policy

    @classmethod
    def from_config(
        cls,
        config_dir: Path | str = CONFIG_DIR,
        *,
        extra: Sequence[Detector] = (),
        model: SupportModel | None = None,
        learned: bool = True,
        behaviour_store: BehaviourStore | None = None,
        context_store: ContextStore | None = None,
    ) -> Pipeline:
        """Rules, crisis, harm and behaviour detectors plus ``extra`` (e.g. the toxicity detector), from
        ``<config_dir>/policy.toml`` and ``<config_dir>/moderation/{rules,crisis}.toml``. The crisis
        and harm detectors share ``model`` (default: the shipped support model); ``learned=False``
        gives rules-only crisis detection and no harm detector."""
        cfg = Path(config_dir)
        policy = Policy.from_file(cfg / DEFAULT_POLICY.name)
        mod = cfg / DEFAULT_RULES.parent.name
        if learned and model is None:
            model = SupportModel()
        if not learned:
            model = None
        detectors: list[Detector] = [
            RulesDetector.from_file(mod / DEFAULT_RULES.name),
            CrisisDetector.from_files(mod / CRISIS_RULES.name, model, context_store),
        ]
        if model is not None:
            detectors.append(HarmDetector(model))
        detectors += [BehaviourDetector(policy.behaviour, behaviour_store), *extra]
        return cls(detectors, policy)

    def reloaded(self, config_dir: Path | str) -> Pipeline:
        """A new pipeline from the policy and rules files in ``config_dir``, keeping this one's models,
        the members' recent context and behaviour history, and the detectors it was given (``extra``).
        A broken file raises :class:`~moderation.errors.ConfigError` naming file, key and reason; this
        pipeline is not touched, so the caller keeps screening with it."""
        crisis = next((d for d in self.detectors if isinstance(d, CrisisDetector)), None)
        behaviour = next((d for d in self.detectors if isinstance(d, BehaviourDetector)), None)
        built = (RulesDetector, CrisisDetector, HarmDetector, BehaviourDetector)
        model = crisis.model if crisis is not None else None
        return Pipeline.from_config(
            config_dir,
            extra=[d for d in self.detectors if not isinstance(d, built)],
            model=model,
            learned=model is not None,
            behaviour_store=behaviour.store if behaviour is not None else None,
            context_store=crisis.context if crisis is not None else None,
        )

    def screen(self, messages: Sequence[Message], skip: Collection[str] = ()) -> list[Verdict]:
        """One verdict per message, in order. ``skip`` names detectors not to run this time (a
        deadline already spent, say); they count as failed, so those messages are flagged."""
        t0 = time.perf_counter()
        items = [ScreenItem(m, normalize(m.body, m.formatted_body)) for m in messages]
        t_norm = time.perf_counter() - t0
        outcomes = [self._run(d, items, skip) for d in self.detectors]
        verdicts = []
        for i, item in enumerate(items):
            signals: list[Signal] = []
            errors: dict[str, str] = {}
            timings = {"normalize": t_norm}
            for oc in outcomes:
                timings[oc.detector] = oc.seconds
                if oc.error is not None:
                    errors[oc.detector] = oc.error
                else:
                    signals.extend(oc.signals[i])
            t1 = time.perf_counter()
            dispositions = self.policy.decide(item.message, signals, errors)
            timings["policy"] = time.perf_counter() - t1
            verdicts.append(Verdict(item.message.event_id, dispositions, signals, timings, errors))
        total = time.perf_counter() - t0
        for v in verdicts:
            v.timings["total"] = total
        return verdicts

    def fast_crisis(self, message: Message) -> Verdict | None:
        """The crisis rules alone, with the policy's crisis dispositions: a verdict that escalates,
        or None. For the bridge's fast path; the full verdict from :meth:`screen` still follows."""
        crisis = next((d for d in self.detectors if isinstance(d, CrisisDetector)), None)
        if crisis is None:
            return None
        item = ScreenItem(message, normalize(message.body, message.formatted_body))
        signals = crisis.detect_rules([item])[0]
        if not signals:
            return None
        dispositions = self.policy.decide(message, signals, {})
        if not any(d.kind == "escalate" for d in dispositions):
            return None
        return Verdict(message.event_id, dispositions, signals, {}, {})

    @staticmethod
    def _run(detector: Detector, items: list[ScreenItem], skip: Collection[str]) -> DetectorOutcome:
        if detector.name in skip:
            return DetectorOutcome(detector.name, [], 0.0, error="skipped")
        t = time.perf_counter()
        try:
            signals = detector.detect(items)
            if len(signals) != len(items):
                raise ValueError(f"returned {len(signals)} results for {len(items)} messages")
        except Exception as exc:  # any detector failure -> human review, never silently allowed
            # the exception type only: its text may quote the message
            return DetectorOutcome(detector.name, [], time.perf_counter() - t, error=type(exc).__name__)
        return DetectorOutcome(detector.name, signals, time.perf_counter() - t)
