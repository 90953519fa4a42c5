"""Synapse's log config keeps a member's message out of the antispam module's log lines: when Hearth
is unreachable the module logs the whole request ("Failed to connect to antispam server (POST <url>
<event>)"), and the filter the config names leaves the event's ID and room, never its content."""

from __future__ import annotations

import importlib
import logging
from pathlib import Path

import yaml
from jinja2 import Environment, FileSystemLoader

TEMPLATES = Path(__file__).resolve().parents[2] / "config" / "synapse"
WORDS = "i can't do this anymore, the pills are in my hand"


def _synapse_log_config(tmp_path: Path) -> dict:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=False)
    return yaml.safe_load(env.get_template("log.config.j2").render(data_dir=str(tmp_path)))


def _as_the_module_logs(config: dict, msg: str, *args: object) -> str:
    """The line synapse-http-antispam would write, through the filters the config attaches."""
    record = logging.LogRecord("synapse_http_antispam", logging.ERROR, __file__, 1, msg, args, None)
    for name in config["loggers"]["synapse_http_antispam"]["filters"]:
        module, _, cls = config["filters"][name]["()"].rpartition(".")
        assert getattr(importlib.import_module(module), cls)().filter(record)
    return record.getMessage()


def test_the_event_sent_to_an_unreachable_hearth_is_logged_without_its_text(tmp_path):
    config = _synapse_log_config(tmp_path)
    event = {
        "event_id": "$abc",
        "room_id": "!room:localhost",
        "sender": "@member:localhost",
        "type": "m.room.message",
        "content": {"msgtype": "m.text", "body": WORDS, "formatted_body": f"<b>{WORDS}</b>"},
    }
    url = "http://127.0.0.1:8080/_hearth/antispam/check_event_for_spam"
    line = _as_the_module_logs(
        config, "Failed to connect to antispam server (POST %s %s)", url, {"event": event}
    )
    assert "pills" not in line
    for kept in ("$abc", "!room:localhost", url):
        assert kept in line
    line = _as_the_module_logs(
        config,
        "Unexpected response from antispam server: %s (POST %s with %s)",
        b"oops",
        url,
        {"event": event},
    )
    assert "pills" not in line


def test_membership_calls_keep_who_and_where(tmp_path):
    config = _synapse_log_config(tmp_path)
    join = {"user": "@member:localhost", "room": "!room:localhost", "is_invited": False}
    line = _as_the_module_logs(config, "Failed to connect to antispam server (POST %s %s)", "u", join)
    assert "@member:localhost" in line
    assert "!room:localhost" in line
