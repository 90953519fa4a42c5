"""What moderators and members read (pure): review cards, appeal cards and reminders, a member's
file, and the private, kind notices a sanctioned member gets. Names and reasons in words."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from datetime import datetime, tzinfo
from typing import Any

from bridge.escalation.render import matrix_to_event, person, pill
from moderation.casework import (
    Appeal,
    MemberFile,
    ModCase,
    Sanction,
    SanctionKind,
)
from moderation.escalation.types import format_time

# Signals and flag reasons in words (``toxicity.insult`` -> "insult").
LABEL_WORDS: dict[str, str] = {
    "severe_toxicity": "severe abuse",
    "identity_attack": "attack on who people are",
    "identity_hate": "hate towards a group",
    "dehumanising": "dehumanising language",
    "incitement": "telling someone to hurt themselves",
    "incitement_self_harm": "telling someone to hurt themselves",
    "method_instruction": "self-harm or suicide method details",
    "method_tip": "self-harm or suicide method details",
    "pro_eating_disorder": "encouraging eating-disorder behaviour",
    "wish_harm": "wishing harm on someone",
    "insult_harassment": "harassment",
    "sexual_harassment": "sexual harassment",
    "spam": "selling or advertising",
    "flood": "posting very fast",
    "mentions": "mass mentions",
    "cruelty": "cruelty",
    "pipeline_unavailable": "could not be screened automatically",
}

KIND_BADGE = {"report": "🚩 Reported", "flag": "🔎 Flagged", "held": "✋ Held (not delivered)"}
CARD_REACTIONS = {"✅": "dismiss", "🗑️": "redact", "🔇": "mute", "🚫": "ban"}
CONFIRM_REACTION = "👍"

MOD_HELP = (
    "Moderation commands (here, in #hearth-moderators): "
    "!case <id> · !dismiss <id> [note] · !queue · "
    "!warn @user <reason> · !mute @user [<duration>] <reason> · !unmute @user · "
    "!ban @user [<duration>] <reason> · !unban @user · !redact <event link or id> [reason] · "
    "!note @user <text> (#labels) · !history @user · "
    "!appeal <id> uphold|lift [note]. Durations: 10m, 2h, 7d, 2w, permanent (bans only). "
    "Add --all to a mute or ban for every Hearth space; reply to a card to act in that card's space. "
    "On a card, react ✅ dismiss, 🗑️ redact, 🔇 mute, 🚫 ban, then 👍 on the bot's question to confirm. "
    "Group sessions: !session help."
)


def label_words(label: str) -> str:
    tail = label.split(".", 1)[-1]
    return LABEL_WORDS.get(tail, tail.replace("_", " "))


def _content(lines: Sequence[str], html_lines: Sequence[str], mentions: Sequence[str]) -> dict[str, Any]:
    """An ``m.text`` (notices do not notify under default push rules) mentioning ``mentions``."""
    return {
        "msgtype": "m.text",
        "body": "\n".join(lines),
        "format": "org.matrix.custom.html",
        "formatted_body": "<br>".join(html_lines),
        "m.mentions": {"user_ids": list(dict.fromkeys(mentions))},
    }


def case_card(
    case: ModCase,
    *,
    excerpt: str | None,
    room_name: str | None,
    sender_name: str | None,
    reporters: Sequence[str],
    reports_against: int,
    earlier_sanctions: int,
    on_duty: Sequence[str],
    names: Mapping[str, str],
    tz: tzinfo,
    server_name: str | None = None,
) -> dict[str, Any]:
    """One review card: the room and sender by name, a link to the event, the reason in words, the
    kept excerpt, who reported it, this member's record, and the moderator(s) on duty mentioned."""
    who = f"{sender_name} ({case.subject})" if sender_name else case.subject
    where = room_name or case.room_id
    member_report = not case.room_id  # a report of the member as a whole, no message
    link = (
        f"https://matrix.to/#/{case.subject}"
        if member_report
        else matrix_to_event(case.room_id, case.event_id, server_name)
    )
    reasons = [case.reason, *(label_words(s) for s in case.signals)]
    reason = "; ".join(dict.fromkeys(r for r in reasons if r))
    state = "open" if case.status == "open" else f"{case.status} by {person(case.decided_by, names)}"
    head = f"{KIND_BADGE.get(case.kind, case.kind)} {case.id} · {state}"
    if case.kind == "held" and case.held > 1:
        head += f" · {case.held} messages refused in a row (the first is shown)"
    record = (
        f"{reports_against} report(s) against this member in all; {earlier_sanctions} earlier sanction(s)"
    )
    lines = [
        head,
        f"From {who} in {where} at {format_time(case.created_at, tz)}",
        f"Why: {reason}",
        "Message: (a report of the member, not of one message)"
        if member_report
        else (f"Message: {excerpt!r}" if excerpt is not None else "Message: (text no longer kept)"),
        f"Link: {link}" if case.kind != "held" else "Never delivered: only moderators read it.",
    ]
    html_lines = [
        f"<b>{html.escape(head)}</b>",
        f"From {pill(case.subject, {case.subject: who})} in <b>{html.escape(where)}</b> "
        f"at {html.escape(format_time(case.created_at, tz))}",
        f"Why: {html.escape(reason)}",
        (
            f"<blockquote>{html.escape(excerpt)}</blockquote>"
            if excerpt is not None
            else "<i>text no longer kept</i>"
        ),
        f'<a href="{html.escape(link)}">Open the message</a>'
        if case.kind != "held"
        else "Never delivered: only moderators read it.",
    ]
    if reporters:
        rep = ", ".join(person(r, names) for r in reporters)
        lines.append(f"Reported by {rep} ({case.reports} report(s) of this message)")
        html_lines.append(f"Reported by {html.escape(rep)} ({case.reports} report(s) of this message)")
    if case.trusted_reports:
        trust = f"{case.trusted_reports} of them by trusted reporters"
        if case.hidden_at is not None:
            trust += "; the message is hidden from the room until a moderator decides"
        lines.append(trust)
        html_lines.append(f"<b>{html.escape(trust)}</b>")
    lines.append(record)
    html_lines.append(html.escape(record))
    if case.status == "open":
        duty = ", ".join(names.get(u) or u for u in on_duty)
        hint = "React ✅ dismiss · 🗑️ redact · 🔇 mute · 🚫 ban (then confirm), or reply with a command (!mod help)."
        lines += [f"On duty: {duty}", hint]
        html_lines += [f"On duty: {', '.join(pill(u, names) for u in on_duty)}", html.escape(hint)]
    elif case.decision:
        lines.append(f"Decision: {case.decision}")
        html_lines.append(f"Decision: {html.escape(case.decision)}")
    content = _content(lines, html_lines, on_duty if case.status == "open" else [])
    content["org.hearth.mod_case"] = {"id": case.id, "kind": case.kind, "status": case.status}
    return content


def edit_of(original_event_id: str, new: dict[str, Any]) -> dict[str, Any]:
    """An ``m.replace`` edit carrying ``new`` (no new mentions: edits must not ping again)."""
    body = {k: v for k, v in new.items() if k != "m.mentions"}
    return {
        **body,
        "body": "* " + new["body"],
        "m.new_content": body,
        "m.relates_to": {"rel_type": "m.replace", "event_id": original_event_id},
        "m.mentions": {},
    }


def sanction_words(s: Sanction, tz: tzinfo) -> str:
    if s.kind == SanctionKind.WARN.value:
        return f"{s.id} warning ({s.reason})"
    until = "until lifted" if s.expires_at is None else f"until {format_time(s.expires_at, tz)}"
    where = "every space" if s.scope == "*" else s.scope
    ended = f", ended {s.end_reason}" if s.ended_at is not None else ""
    return f"{s.id} {s.kind} in {where} {until} ({s.reason}){ended}"


def member_notice(s: Sanction, space_name: str, tz: tzinfo, duration: str) -> dict[str, Any]:
    """What a member is told privately when sanctioned: what, until when, why, how to appeal; and
    that a crisis always reaches someone."""
    if s.kind == SanctionKind.WARN.value:
        first = f"A moderator has sent you a warning about your messages in {space_name}: {s.reason}"
        after = "Nothing else has changed; you're still welcome to post."
    elif s.kind == SanctionKind.MUTE.value:
        until = format_time(s.expires_at, tz) if s.expires_at else "further notice"
        first = (
            f"A moderator has paused your posting in {space_name} for {duration} (until {until}), "
            f"because: {s.reason}"
        )
        after = "You can still read. If you are in crisis, write anyway: it will reach our care team."
    else:
        until = f"until {format_time(s.expires_at, tz)}" if s.expires_at else "until a moderator lifts it"
        first = f"A moderator has removed you from {space_name} {until}, because: {s.reason}"
        after = "If you are in crisis, you can always write here: it reaches our care team."
    appeal = (
        "If you think this was a mistake, reply here with !appeal and what you'd like the moderators to "
        "know. A different moderator will look at it."
    )
    body = f"{first}\n\n{after}\n\n{appeal}"
    return {
        "msgtype": "m.text",
        "body": body,
        "format": "org.matrix.custom.html",
        "formatted_body": "".join(f"<p>{html.escape(p)}</p>" for p in body.split("\n\n")),
        "m.mentions": {},
    }


def member_text(body: str) -> dict[str, Any]:
    return {"msgtype": "m.text", "body": body, "m.mentions": {}}


def muted_refusal(space_name: str, until: datetime, reason: str, tz: tzinfo) -> str:
    """The gate's kind refusal of a muted member's message (crisis messages are never refused)."""
    return (
        f"Your posting in {space_name} is paused until {format_time(until, tz)}, because: {reason}. "
        "You can still read, and if you are in crisis your message will reach our care team. "
        "To appeal, send !appeal in your private room with Hearth."
    )


def appeal_card(
    appeal: Appeal, sanction: Sanction, *, names: Mapping[str, str], on_duty: Sequence[str], tz: tzinfo
) -> dict[str, Any]:
    who = person(appeal.user_id, names)
    head = f"⚖️ Appeal {appeal.id} of {sanction_words(sanction, tz)}"
    lines = [
        head,
        f"From {who}, imposed by {person(sanction.by, names)}",
        f"Their words: {appeal.text!r}",
        f"Decide with !appeal {appeal.id} uphold|lift [note] (not {names.get(sanction.by) or sanction.by}).",
    ]
    html_lines = [
        f"<b>{html.escape(head)}</b>",
        f"From {html.escape(who)}, imposed by {html.escape(person(sanction.by, names))}",
        f"<blockquote>{html.escape(appeal.text)}</blockquote>",
        html.escape(lines[3]),
    ]
    return _content(lines, html_lines, on_duty)


def appeal_reminder(
    appeal: Appeal, *, names: Mapping[str, str], on_duty: Sequence[str], tz: tzinfo
) -> dict[str, Any]:
    text = (
        f"⏰ Appeal {appeal.id} from {person(appeal.user_id, names)} has waited since "
        f"{format_time(appeal.created_at, tz)}. !appeal {appeal.id} uphold|lift [note]"
    )
    return _content([text], [html.escape(text)], on_duty)


def appeal_decision_notice(appeal: Appeal, lifted: bool) -> dict[str, Any]:
    if lifted:
        body = "A moderator looked at your appeal and lifted the decision. Thank you for telling us; you're welcome back."
    else:
        body = (
            "A moderator looked at your appeal and decided the decision stands. "
            "We know that may be disappointing; it ends when its time is up."
        )
    if appeal.note:
        body += f"\n\nTheir note: {appeal.note}"
    return member_text(body)


def member_file_text(f: MemberFile, names: Mapping[str, str], tz: tzinfo) -> str:
    """``!history @user``: the member's file in a few lines (no message text)."""
    out = [f"History of {person(f.user_id, names)}:"]
    decided = ", ".join(f"{k} {v}" for k, v in sorted(f.decisions.items())) or "none"
    out.append(
        f"Screening decisions on their messages: {decided}. Reports against them: {f.reports_against}."
    )
    for c in f.cases[-10:]:
        out.append(f"· case {c.id} {c.kind} {format_time(c.created_at, tz)}: {c.reason} — {c.status}")
    for s in f.sanctions[-10:]:
        out.append(f"· {sanction_words(s, tz)} by {person(s.by, names)}")
    for a in f.appeals[-5:]:
        out.append(f"· appeal {a.id} of {a.sanction_id}: {a.status}")
    for n in f.notes[-10:]:
        labels = f" [{', '.join(n.labels)}]" if n.labels else ""
        out.append(f"· note by {person(n.by, names)} {format_time(n.created_at, tz)}{labels}: {n.text}")
    if len(out) == 2:
        out.append("Nothing else on file.")
    return "\n".join(out)
