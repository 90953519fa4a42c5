"""Escalation desk pieces that need no homeserver (the desk itself runs end to end in
tests/e2e/test_escalation.py against a real Synapse)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.escalations import _strip_reply_fallback, load_resources, load_tuning
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
