"""Security at the edges of a running stack: no member's words in any log (Hearth's or Synapse's; the
antispam module's fail-open line is tested in tests/bridge/test_synapse_logging.py); files holding
member text or secrets are the owner's only. Beyond the known words sent here, every stack the
end-to-end, fault and federation tests start searches its logs, when it stops, for every message body
sent while it ran (``running_stack`` in tests/e2e/conftest.py)."""

from __future__ import annotations

import secrets
import stat

import pytest
from sqlmodel import Session

from bridge import stack
from moderation.models import ModerationDecision
from tests.e2e.conftest import hearth_room, resolve_open_escalations, stack_logs, words_in_logs
from tests.e2e.matrix import MatrixError, wait_for

pytestmark = pytest.mark.e2e

# Written by the test fixtures themselves, not by Hearth or Synapse (no secret, no member text), and
# process IDs (public in /proc anyway); config/ and crisis_resources.toml are the tests' copies of
# the shipped policy, rules and crisis lines.
NOT_PRIVATE = {"staff.toml", "crisis_resources.toml", "clock_offset", "hearth.pid", "synapse.pid"}


def _decided(hs, event_id: str) -> ModerationDecision | None:
    with Session(hs.engine) as s:
        return s.get(ModerationDecision, event_id)


@pytest.mark.usefixtures("e2e_rooms_removed_afterwards")  # later files share the stack
def test_no_message_text_reaches_any_log(hearth_stack):
    hs = hearth_stack
    room = hearth_room(hs, prefix="e2e-hostile-")
    member = hs.member("logcanary")
    member.join(room)
    words = {name: f"zq{secrets.token_hex(6)}" for name in ("ordinary", "abuse", "crisis", "html")}
    sent = [
        member.say(room, f"thank you all, the breathing exercise {words['ordinary']} helped today"),
        member.say(room, f"i have the pills here and i'm taking them all tonight {words['crisis']}"),
        member.send(
            room,
            {
                "msgtype": "m.text",
                "body": f"a formatted hello {words['html']}",
                "format": "org.matrix.custom.html",
                "formatted_body": f"<p>a <b>formatted</b> hello {words['html']}</p>",
            },
        ),
    ]
    # refused at the gate, or, when the gate's budget ran out on a busy machine, delivered and then
    # redacted by the bot: either way its words must not reach a log
    errcode = None
    try:
        abusive = member.say(room, f"you are a worthless idiot {words['abuse']}")
    except MatrixError as refused:
        errcode = refused.body.get("errcode")
    else:
        decision = wait_for(lambda: _decided(hs, abusive), what="the abusive message screened after delivery")
        errcode = "M_FORBIDDEN" if any(d["kind"] == "block" for d in decision.dispositions) else "delivered"
    assert errcode == "M_FORBIDDEN"
    for event_id in sent:
        wait_for(lambda: _decided(hs, event_id), what="each message screened")  # noqa: B023
    logs = stack_logs(hs.layout)
    assert len(logs) >= 3  # Hearth's log, Synapse's log and Synapse's standard output
    leaks = [
        (name, word, file) for name, word in words.items() for file, text in logs.items() if word in text
    ]
    assert leaks == []
    resolve_open_escalations(hs)  # the crisis message's case, so it stops re-paging


def test_the_whole_run_log_search_finds_a_message_body_in_any_log(tmp_path):
    # the check every stack runs when it stops, on a log that does hold a member's words
    layout = stack.StackLayout(root=tmp_path)
    body = f"my words {secrets.token_hex(6)} stay private"
    layout.hearth_log.parent.mkdir(parents=True, exist_ok=True)
    layout.hearth_log.write_text(f"INFO screened: {body}\n")
    (tmp_path / "synapse").mkdir(exist_ok=True)
    (tmp_path / "synapse" / "homeserver.log.1").write_text("nothing private here\n")
    leaks = words_in_logs(layout, [body, "hi", "a body that was never logged anywhere"])
    assert leaks == [(str(layout.hearth_log.relative_to(tmp_path)), body[:40])]


def test_files_with_member_text_or_secrets_are_the_owners_only(hearth_stack):
    root = hearth_stack.layout.root
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    assert stat.S_IMODE(hearth_stack.layout.synapse_dir.stat().st_mode) == 0o700
    open_to_others = []
    for path in root.rglob("*"):
        if path.is_symlink() or path.name in NOT_PRIVATE or path.is_relative_to(root / "config"):
            continue
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            open_to_others.append((str(path.relative_to(root)), oct(mode)))
    assert open_to_others == []
    # the ones that matter most are there (so the walk above saw them)
    names = {p.name for p in root.rglob("*")}
    assert {"hearth.toml", "homeserver.yaml", "homeserver.log"} <= names
