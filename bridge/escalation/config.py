"""What the escalation subsystem is configured with, read and checked at start-up: the staff file,
the helpline catalogue and default region, ``config/escalation.toml`` with the settings' SLA
overrides, and the webhook. Every error is a :class:`SettingsError` naming the setting and problem.

The staff file and the helpline catalogue are read again on SIGHUP (:func:`reread`); a file that
fails to load changes nothing. Every part reads them through the one :class:`DeskConfig` (or a
:class:`StaffIds` view of it), so a good reload takes effect everywhere at once."""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Iterator, Set
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from config.resources import CrisisResources, ResourceConfigError, load_crisis_resources
from config.settings import Settings, SettingsError
from moderation.escalation import EscalationSettings
from spaces.staff import DEFAULT_STAFF_FILE, Staff, StaffError, load_staff


def load_tuning(path: Path, settings: Settings) -> EscalationSettings:
    """``config/escalation.toml`` with the per-tier SLA overrides from settings applied."""
    try:
        with path.open("rb") as f:
            tuning = EscalationSettings.model_validate(tomllib.load(f))
    except OSError as e:
        raise SettingsError(f"`escalation.tuning_file` {path}: cannot read ({e.strerror or e})") from None
    except (tomllib.TOMLDecodeError, ValidationError) as e:
        raise SettingsError(f"`escalation.tuning_file` {path}: {e}") from None
    cfg = settings.escalation
    overrides = {
        tier: seconds
        for tier, seconds in (
            ("imminent", cfg.sla_imminent_seconds),
            ("high", cfg.sla_high_seconds),
            ("moderate", cfg.sla_moderate_seconds),
        )
        if seconds is not None
    }
    if overrides:
        tuning = tuning.model_copy(update={"sla": tuning.sla.model_copy(update=overrides)})
    return tuning


def load_resources(settings: Settings) -> tuple[CrisisResources, str | None]:
    """The helpline catalogue and the operator's default region, checked against each other;
    :class:`SettingsError` names the setting and the problem."""
    cfg = settings.escalation
    try:
        resources = load_crisis_resources(cfg.resources_file)
    except ResourceConfigError as e:
        raise SettingsError(f"`escalation.resources_file`: {e}") from None
    region = cfg.default_region or None
    if region and resources.known(region) != region:
        raise SettingsError(
            f"`escalation.default_region`: {region!r} has no lines in {cfg.resources_file}: "
            f"use one of {resources.codes}, or leave it empty"
        )
    return resources, region


def load_staff_file(settings: Settings) -> Staff:
    """The staff file; :class:`SettingsError` names the setting, the file, the key and the reason."""
    try:
        return load_staff(settings.escalation.staff_file or DEFAULT_STAFF_FILE)
    except StaffError as e:
        raise SettingsError(f"`escalation.staff_file`: {e}") from None


@dataclass(frozen=True)
class Reread:
    """What a reload read: each file's new contents, or None with its refusal in ``errors``."""

    staff: Staff | None
    resources: CrisisResources | None
    errors: tuple[str, ...]


def reread(settings: Settings) -> Reread:
    """Read the staff file and the crisis resources again, each on its own: a broken one is refused
    (its error names the file, the key and the reason) without holding back the other."""
    cfg = settings.escalation
    errors: list[str] = []
    staff: Staff | None = None
    resources: CrisisResources | None = None
    try:
        staff = load_staff_file(settings)
    except SettingsError as e:
        errors.append(str(e))
    except Exception as e:  # anything else (e.g. not UTF-8) is a refusal too, never a failed reload
        errors.append(
            f"`escalation.staff_file`: {cfg.staff_file or DEFAULT_STAFF_FILE}: {type(e).__name__}: {e}"
        )
    try:
        resources, _ = load_resources(settings)
    except SettingsError as e:
        errors.append(str(e))
    except Exception as e:
        errors.append(f"`escalation.resources_file`: {cfg.resources_file}: {type(e).__name__}: {e}")
    return Reread(staff, resources, tuple(errors))


def _ack_reactions(tuning: EscalationSettings, staff: Staff) -> tuple[str, ...]:
    return tuple(dict.fromkeys([*tuning.ack_reactions, *staff.acknowledge.reactions]))


@dataclass
class DeskConfig:
    """Everything the desk's parts read from configuration, shared by reference: a reload replaces
    ``staff`` and ``resources`` (:meth:`use_staff`, :meth:`use_resources`); the rest is fixed."""

    server_name: str
    staff_room_alias: str  # "#hearth-staff:server"
    staff: Staff
    resources: CrisisResources
    default_region: str | None
    tuning: EscalationSettings
    ack_reactions: tuple[str, ...]
    webhook_url: str
    webhook_secret: bytes
    sweep_seconds: float
    poll_seconds: float
    care_room_pool: int
    # Derived from ``staff`` (kept with it by use_staff): read on every message and sign-in.
    clinicians: frozenset[str] = field(init=False)
    everyone: frozenset[str] = field(init=False)  # moderators and clinicians
    protected: frozenset[str] = field(init=False)  # every listed staff member, admins too

    def __post_init__(self) -> None:
        self._derive()

    def _derive(self) -> None:
        self.clinicians = frozenset(self.staff.clinician_ids)
        self.everyone = frozenset(self.staff.all_ids)
        self.protected = self.staff.protected_ids

    def use_staff(self, staff: Staff) -> None:
        """A reloaded staff file: who is staff, their roles, the rota and the acknowledge reactions."""
        self.staff = staff
        self.ack_reactions = _ack_reactions(self.tuning, staff)
        self._derive()

    def use_resources(self, resources: CrisisResources) -> None:
        """A reloaded helpline catalogue (already checked against ``default_region``)."""
        self.resources = resources

    @property
    def webhook_enabled(self) -> bool:
        return bool(self.webhook_url)

    @classmethod
    def load(cls, settings: Settings) -> DeskConfig:
        cfg = settings.escalation
        staff = load_staff_file(settings)
        resources, region = load_resources(settings)
        tuning = load_tuning(cfg.tuning_file, settings)
        server = settings.matrix.server_name
        return cls(
            server_name=server,
            staff_room_alias=f"#{cfg.staff_room_alias}:{server}",
            staff=staff,
            resources=resources,
            default_region=region,
            tuning=tuning,
            ack_reactions=_ack_reactions(tuning, staff),
            webhook_url=cfg.webhook_url,
            webhook_secret=cfg.webhook_secret.get_secret_value().encode() if cfg.webhook_secret else b"",
            sweep_seconds=cfg.sweep_seconds,
            poll_seconds=cfg.poll_seconds,
            care_room_pool=cfg.care_room_pool,
        )


class StaffIds(Set[str]):
    """A live view of a set of staff user IDs (``read`` is asked on each use): what the gate's checks,
    screening and the welcome hold instead of a copy, so a reloaded staff file applies to them too."""

    def __init__(self, read: Callable[[], frozenset[str]]) -> None:
        self._read = read

    def __contains__(self, user: object) -> bool:
        return user in self._read()

    def __iter__(self) -> Iterator[str]:
        return iter(self._read())

    def __len__(self) -> int:
        return len(self._read())
