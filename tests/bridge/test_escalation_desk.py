"""Escalation desk pieces that need no homeserver (the desk itself runs end to end in
tests/e2e/test_escalation.py against a real Synapse)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.escalation.commands import strip_reply_fallback as _strip_reply_fallback
from bridge.escalation.config import load_resources, load_tuning
from config.settings import DEFAULT_FILE, SettingsError, load_settings


def settings(**escalation: object):
    return load_settings(None, environment="development", escalation=escalation)


def test_sla_overrides_from_settings_apply_over_the_tuning_file():
    s = settings(sla_imminent_seconds=3)
    tuning = load_tuning(s.escalation.tuning_file, s)
    assert tuning.sla.imminent == 3
    assert tuning.sla.high == 900  # untouched tiers keep config/escalation.toml's values
    assert "✅" in tuning.ack_reactions


def test_a_broken_tuning_file_names_the_setting(tmp_path: Path):
    bad = tmp_path / "escalation.toml"
    bad.write_text("[sla]\nimminent = -1\n")
    s = settings(tuning_file=str(bad))
    with pytest.raises(SettingsError, match="escalation.tuning_file"):
        load_tuning(bad, s)


def test_a_webhook_needs_a_secret():
    with pytest.raises(SettingsError, match="webhook_secret is required"):
        settings(webhook_url="https://example.org/hook")
    with pytest.raises(SettingsError, match="webhook_url"):
        settings(webhook_url="ftp://example.org/hook", webhook_secret="s")
    assert settings(webhook_url="https://example.org/hook", webhook_secret="s").escalation.webhook_url


def test_a_placeholder_webhook_secret_is_refused_in_production():
    with pytest.raises(SettingsError, match="escalation.webhook_secret"):
        load_settings(
            None,
            matrix={"bot_password": "x" * 20},
            gate={"secret": "y" * 20},
            staff_api={"session_secret": "z" * 20},
            escalation={"webhook_url": "https://example.org/hook", "webhook_secret": "CHANGE-ME"},
        )


def test_default_toml_documents_the_escalation_section():
    text = DEFAULT_FILE.read_text()
    assert "[escalation]" in text
    assert "staff_room_alias" in text


def test_commands_sent_as_replies_lose_their_quoted_fallback():
    body = "> <@hearth:localhost> Crisis escalation E-7K3QX2\n> more\n\n!ack"
    assert _strip_reply_fallback(body) == "!ack"
    assert _strip_reply_fallback("!ack E-7K3QX2") == "!ack E-7K3QX2"


def test_the_operators_default_region_must_have_lines():
    resources, region = load_resources(settings(default_region="GB"))
    assert region == "GB"
    assert resources.regions["GB"].main_line.name == "Samaritans"
    assert load_resources(settings())[1] is None  # empty: the international set
    with pytest.raises(
        SettingsError, match=r"`escalation.default_region`: 'FR' has no lines in .*use one of \['US'"
    ):
        load_resources(settings(default_region="FR"))
    with pytest.raises(SettingsError, match="escalation.default_region"):
        settings(default_region="uk")  # ISO 3166-1 alpha-2, upper case


def test_a_broken_catalogue_names_the_setting(tmp_path: Path):
    bad = tmp_path / "crisis_resources.toml"
    bad.write_text("[regions.US]\nname = 'United States'\n")
    with pytest.raises(SettingsError, match=r"`escalation.resources_file`: .*crisis_resources.toml"):
        load_resources(settings(resources_file=str(bad)))


# --- the port: one raise per crisis event -------------------------------------------------


async def test_the_after_delivery_raise_is_answered_from_memory_unless_it_brings_a_higher_tier(engine):
    """The gate raises; the after-delivery safety net for the same event adds nothing (no second
    transaction, no 'merged' audit row) unless its verdict is more urgent, which upgrades the case."""
    from datetime import UTC, datetime

    from sqlmodel import Session, select

    from bridge.clock import SystemClock
    from bridge.escalation.desk import EscalationDesk
    from bridge.gateway import NioGateway
    from bridge.scheduler import Scheduler
    from bridge.tasks import TaskGroup
    from config.ids import EventID, RoomID, UserID
    from moderation.escalation import Escalation, EscalationAudit
    from moderation.types import Disposition, Message, Verdict

    clock = SystemClock()
    gateway = NioGateway("http://127.0.0.1:9", "@hearth:localhost")  # never contacted: not logged in
    desk = EscalationDesk(settings(), engine, gateway, Scheduler(clock), clock, TaskGroup())
    message = Message(
        EventID("$crisis"), RoomID("!room:localhost"), UserID("@river:localhost"), "", datetime.now(UTC)
    )

    def verdict(tier: str) -> Verdict:
        return Verdict(
            message.event_id, [Disposition("escalate", "crisis", tier=tier, category="plan_or_means")]
        )

    def audit_kinds(esc_id: str) -> list[str]:
        with Session(engine) as s:
            rows = s.exec(select(EscalationAudit).where(EscalationAudit.escalation_id == esc_id)).all()
            return [r.transition for r in rows]

    try:
        assert await desk.raise_for(message, Verdict(message.event_id, [Disposition("allow")])) is None
        first = await desk.raise_for(message, verdict("high"))
        assert first is not None
        again = await desk.raise_for(message, verdict("high"))  # the safety net after delivery
        assert again is not None
        assert again.id == first.id
        assert "merged" not in audit_kinds(first.id)
        upgraded = await desk.raise_for(message, verdict("imminent"))
        assert upgraded is not None
        assert upgraded.id == first.id
        with Session(engine) as s:
            assert s.get(Escalation, first.id).severity == "imminent"
    finally:
        await desk.close()
