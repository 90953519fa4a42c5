"""Core value types of the moderation pipeline, shared by every detector and the policy.

Detectors only *report* signals; the policy alone decides what happens (detection apart from
disposition). Everything here is plain data: no I/O, no clock, no framework imports.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from config.ids import EventID, RoomID, UserID


@dataclass(frozen=True)
class Span:
    """A half-open character range ``[start, end)`` in the *original* message text."""

    start: int
    end: int


@dataclass(frozen=True)
class Message:
    """One message to screen, as the gate or the bot's listener received it."""

    event_id: EventID
    room_id: RoomID
    sender: UserID
    body: str
    sent_at: datetime
    formatted_body: str | None = None
    msgtype: str = "m.text"
    profile: str = "support"  # moderation profile of the room (from the space theme)
    space: str | None = None  # theme slug of the room's space, if it is a Hearth room
    sender_joined_at: datetime | None = None  # when the sender joined the room, if known
    mentions: int = 0  # users mentioned (m.mentions user_ids or pills)
    has_media: bool = False
    mentions_room: bool = False  # the whole room mentioned (m.mentions room, or @room without m.mentions)
    sender_remote: bool = False  # the sender's account is on another homeserver (federation)


@dataclass(frozen=True)
class NormalizedText:
    """A folded form of the message for matching, with a map back to the original.

    ``offsets[i]`` is the index in ``original`` of the character ``text[i]`` came from, so an
    evidence span found in ``text`` maps back with :meth:`to_original`. ``variants`` are other
    readings of the same ``original`` (letters stretched, "I" written for "l"), each with its own
    ``offsets``: the rules match them too; the models read ``text`` only.
    """

    original: str
    text: str
    offsets: tuple[int, ...]
    variants: tuple[NormalizedText, ...] = ()

    @property
    def readings(self) -> tuple[NormalizedText, ...]:
        """``self`` and its ``variants``: every folded form the rules match against."""
        return (self, *self.variants)

    def to_original(self, start: int, end: int) -> Span:
        if not self.offsets:
            return Span(0, 0)
        s = self.offsets[min(start, len(self.offsets) - 1)]
        e = self.offsets[min(max(end - 1, start), len(self.offsets) - 1)] + 1
        return Span(s, e)


@dataclass(frozen=True)
class Signal:
    """What a detector saw. ``label`` is namespaced by detector, e.g. ``toxicity.insult``,
    ``rules.incitement``, ``crisis.plan``, ``behaviour.flood``."""

    detector: str
    label: str
    score: float
    evidence: tuple[Span, ...] = ()
    rule: str | None = None  # the rule or list entry that fired, for explanations
    tier: str | None = None  # crisis tier: imminent | high | moderate
    category: str | None = None  # crisis category
    action: str | None = None  # a rule's configured action hint: block | flag | escalate


@dataclass(frozen=True)
class ScreenItem:
    """A message with its normalised text, as handed to every detector."""

    message: Message
    norm: NormalizedText


@dataclass
class DetectorOutcome:
    """One detector's result for a batch, with its timing (seconds) and error, if any."""

    detector: str
    signals: list[list[Signal]]
    seconds: float
    error: str | None = None


class Detector(Protocol):
    """A detector reports signals for a batch of messages; it never decides what happens."""

    name: str

    def detect(self, batch: Sequence[ScreenItem]) -> list[list[Signal]]:
        """Return one list of signals per item, in order."""
        ...


@dataclass(frozen=True)
class Disposition:
    """One action the policy chose. ``kind``: allow | block | redact | warn | mute | escalate |
    send_resources | flag."""

    kind: str
    reason: str = ""  # rule or label that caused it
    tier: str | None = None  # for escalate
    category: str | None = None  # for escalate
    mute_minutes: int | None = None  # for mute
    message: str | None = None  # the kind text shown to the sender (block/warn)


@dataclass
class Verdict:
    """The policy's decision for one message, with everything that led to it."""

    event_id: EventID
    dispositions: list[Disposition]
    signals: list[Signal] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def blocked(self) -> bool:
        return any(d.kind == "block" for d in self.dispositions)

    def of_kind(self, kind: str) -> list[Disposition]:
        return [d for d in self.dispositions if d.kind == kind]
