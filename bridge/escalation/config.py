"""What the escalation subsystem is configured with, read and checked once at start-up: the staff
file, the helpline catalogue and default region, ``config/escalation.toml`` with the settings' SLA
overrides, and the webhook. Every error is a :class:`SettingsError` naming the setting and problem."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
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


@dataclass(frozen=True)
class DeskConfig:
    """Everything the desk's parts read from configuration."""

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

    @property
    def clinicians(self) -> frozenset[str]:
        return frozenset(self.staff.clinician_ids)

    @property
    def everyone(self) -> frozenset[str]:
        return frozenset(self.staff.all_ids)

    @property
    def webhook_enabled(self) -> bool:
        return bool(self.webhook_url)

    @classmethod
    def load(cls, settings: Settings) -> DeskConfig:
        cfg = settings.escalation
        try:
            staff = load_staff(cfg.staff_file or DEFAULT_STAFF_FILE)
        except StaffError as e:
            raise SettingsError(f"`escalation.staff_file`: {e}") from None
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
            ack_reactions=tuple(dict.fromkeys([*tuning.ack_reactions, *staff.acknowledge.reactions])),
            webhook_url=cfg.webhook_url,
            webhook_secret=cfg.webhook_secret.get_secret_value().encode() if cfg.webhook_secret else b"",
            sweep_seconds=cfg.sweep_seconds,
            poll_seconds=cfg.poll_seconds,
            care_room_pool=cfg.care_room_pool,
        )
