"""Alert rendering (pure): the Matrix contents of staff alerts, their status edits and re-pages, and
the person's crisis resources, with display names and categories in words."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from datetime import UTC, tzinfo
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from config.ids import EventID, UserID
from moderation.escalation.store import dedupe
from moderation.escalation.tables import Escalation, escalation_summary
from moderation.escalation.types import (
    OUTCOME_LABELS,
    UNACKNOWLEDGED_STATUSES,
    Outcome,
    Severity,
    Status,
    format_time,
)

if TYPE_CHECKING:
    from config.resources import CrisisResources


# ---------------------------------------------------------------------------------------------
# Rendering (pure: Matrix event contents and webhook bodies)

_SEVERITY_BADGE = {
    Severity.IMMINENT: "🔴 IMMINENT",
    Severity.HIGH: "🟠 HIGH",
    Severity.MODERATE: "🟡 MODERATE",
}


def matrix_to_event(room_id: str, event_id: str, server_name: str | None = None) -> str:
    """``https://matrix.to/#/<room_id>/<event_id>`` (with ``?via=`` when a server is known)."""
    link = f"https://matrix.to/#/{quote(room_id, safe='!:@$.')}/{quote(event_id, safe='!:@$.')}"
    return link + (f"?via={quote(server_name, safe='.:')}" if server_name else "")


# What staff read: categories in words, never identifiers.
CATEGORY_WORDS: dict[str, str] = {
    "ideation": "thoughts of suicide",
    "plan_or_means": "plan or means",
    "attempt_in_progress": "attempt in progress",
    "self_harm": "self-harm",
    "harm_to_others": "may harm someone else",
    "abuse_disclosure": "being harmed by someone",
    "concern_for_other": "worried about someone else",
}


def category_words(category: str) -> str:
    """``plan_or_means`` -> ``plan or means``; an unknown category reads with its underscores as spaces."""
    return CATEGORY_WORDS.get(category, category.replace("_", " "))


def person(user_id: str | None, names: Mapping[str, str]) -> str:
    """``Dr Ana Ruiz (@ana:localhost)`` when a display name is known, else the bare Matrix ID."""
    if not user_id:
        return ""
    name = names.get(user_id)
    return f"{name} ({user_id})" if name and name != user_id else user_id


def pill(user_id: str, names: Mapping[str, str] | None = None) -> str:
    """A matrix.to link to ``user_id`` labelled with their display name (HTML)."""
    label = (names or {}).get(user_id) or user_id
    return f'<a href="https://matrix.to/#/{quote(user_id, safe="@:.")}">{html.escape(label)}</a>'


def _alone(esc: Escalation, tz: tzinfo) -> str:
    if esc.left_alone_at is None:
        return ""
    return f" · the person asked to be left alone at {format_time(esc.left_alone_at, tz)}"


def _status_line(esc: Escalation, tz: tzinfo, names: Mapping[str, str] | None = None) -> str:
    names = names or {}
    st = Status(esc.status)
    if st is Status.OPEN:
        return "OPEN: awaiting acknowledgement" + _alone(esc, tz)
    if st is Status.REPAGED:
        return f"RE-PAGED ×{esc.repage_count}: still unacknowledged" + _alone(esc, tz)
    if st is Status.ACKNOWLEDGED and esc.taken_by:
        when = format_time(esc.taken_at, tz) if esc.taken_at else ""
        return f"WITH {person(esc.taken_by, names)} in the care room since {when}{_alone(esc, tz)}"
    if st is Status.ACKNOWLEDGED:
        when = format_time(esc.acknowledged_at, tz) if esc.acknowledged_at else ""
        return f"ACKNOWLEDGED by {person(esc.acknowledged_by, names)} at {when}{_alone(esc, tz)}"
    label = OUTCOME_LABELS.get(Outcome(esc.outcome), esc.outcome) if esc.outcome else ""
    when = format_time(esc.resolved_at, tz) if esc.resolved_at else ""
    return f"RESOLVED ({label}) by {person(esc.resolved_by, names)} at {when}"


def _alert_parts(
    esc: Escalation,
    *,
    room_name: str | None,
    space_name: str | None,
    mentions: Sequence[str],
    server_name: str | None,
    tz: tzinfo,
    ack_hint: str,
    heading: str,
    names: Mapping[str, str],
) -> tuple[str, str]:
    sev = Severity(esc.severity)
    category = category_words(esc.category)
    member = person(esc.sender, names)
    badge = _SEVERITY_BADGE[sev]
    where = room_name or esc.room_id
    if space_name or esc.space:
        where = f"{space_name or esc.space} › {where}"
    link = matrix_to_event(esc.room_id, esc.first_event_id, server_name)
    created = format_time(esc.created_at, tz)
    status = _status_line(esc, tz, names)
    excerpt = esc.excerpt or "(excerpt purged)"
    more = f" (+{esc.message_count - 1} more)" if esc.message_count > 1 else ""
    unacked = esc.status in UNACKNOWLEDGED_STATUSES
    hint = f"React {ack_hint} or send !ack {esc.id} to acknowledge." if unacked else ""

    plain = [
        f"{heading} {esc.id}: {badge} · {category}",
        f"Where: {where}",
        f"Member: {member}",
        f"Raised: {created}",
        f"Message{more}: “{excerpt}”",
        f"Status: {status}",
        f"Open: {link}",
    ]
    if mentions:
        plain.append("On call: " + ", ".join(person(u, names) for u in mentions))
    if hint:
        plain.append(hint)

    e = html.escape
    rows = [
        ("Where", e(where)),
        ("Member", e(member)),
        ("Raised", e(created)),
        (f"Message{e(more)}", f"<blockquote>{e(excerpt)}</blockquote>"),
        ("Status", f"<b>{e(status)}</b>"),
    ]
    parts = [f"<h4>{e(heading)} {e(esc.id)}: {e(badge)} · {e(category)}</h4>", "<ul>"]
    parts += [f"<li><b>{k}:</b> {v}</li>" for k, v in rows]
    parts.append("</ul>")
    parts.append(f'<p><a href="{e(link)}">Open the message in its room</a></p>')
    if mentions:
        parts.append("<p>On call: " + ", ".join(pill(u, names) for u in mentions) + "</p>")
    if hint:
        parts.append(f"<p>React {e(ack_hint)} or send <code>!ack {e(esc.id)}</code> to acknowledge.</p>")
    return "\n".join(plain), "".join(parts)


def staff_alert_content(
    esc: Escalation,
    *,
    room_name: str | None = None,
    space_name: str | None = None,
    mentions: Sequence[UserID | str] = (),
    server_name: str | None = None,
    tz: tzinfo = UTC,
    ack_hint: str = "✅",
    names: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The staff-room ``m.text`` for an escalation: readable HTML summary (tier, category, space
    and room, time, escaped excerpt, matrix.to link), ``m.mentions`` of the on-call clinician(s),
    pills in the HTML, and ``org.hearth.escalation`` (see :func:`escalation_summary`)."""
    users = dedupe(mentions)
    body, formatted = _alert_parts(
        esc,
        room_name=room_name,
        space_name=space_name,
        mentions=users,
        server_name=server_name,
        tz=tz,
        ack_hint=ack_hint,
        heading="Crisis escalation",
        names=names or {},
    )
    return {
        # m.text, not m.notice: Synapse's default .m.rule.suppress_notices comes before
        # .m.rule.is_user_mention, so a notice would never ring the clinician's phone
        "msgtype": "m.text",
        "body": body,
        "format": "org.matrix.custom.html",
        "formatted_body": formatted,
        "m.mentions": {"user_ids": users},
        "org.hearth.escalation": escalation_summary(esc),
    }


def status_edit_content(
    esc: Escalation,
    *,
    original_alert_event_id: EventID | str,
    room_name: str | None = None,
    space_name: str | None = None,
    mentions: Sequence[UserID | str] = (),
    server_name: str | None = None,
    tz: tzinfo = UTC,
    ack_hint: str = "✅",
    names: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """An ``m.replace`` edit of the alert carrying the current status (in the text and in
    ``org.hearth.escalation`` at both levels). ``mentions`` are *newly* mentioned users only (e.g. a
    severity upgrade); plain status edits ping nobody."""
    new = staff_alert_content(
        esc,
        room_name=room_name,
        space_name=space_name,
        mentions=mentions,
        server_name=server_name,
        tz=tz,
        ack_hint=ack_hint,
        names=names,
    )
    return {
        "msgtype": "m.notice",
        "body": "* " + new["body"],
        "format": "org.matrix.custom.html",
        "formatted_body": "* " + new["formatted_body"],
        "m.mentions": new["m.mentions"],
        "m.new_content": new,
        "m.relates_to": {"rel_type": "m.replace", "event_id": original_alert_event_id},
        "org.hearth.escalation": escalation_summary(esc),
    }


def repage_content(
    esc: Escalation,
    *,
    mentions: Sequence[UserID | str],
    reply_to: EventID | str | None = None,
    room_name: str | None = None,
    space_name: str | None = None,
    server_name: str | None = None,
    tz: tzinfo = UTC,
    ack_hint: str = "✅",
    names: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A fresh ``m.notice`` re-paging an unacknowledged escalation (a reply to the alert when
    ``reply_to`` is known), mentioning the backup rota (and every clinician for imminent)."""
    users = dedupe(mentions)
    overdue = f"Re-page #{esc.repage_count}: not acknowledged within its SLA."
    body, formatted = _alert_parts(
        esc,
        room_name=room_name,
        space_name=space_name,
        mentions=users,
        server_name=server_name,
        tz=tz,
        ack_hint=ack_hint,
        heading="⏰ RE-PAGE",
        names=names or {},
    )
    content: dict[str, Any] = {
        "msgtype": "m.text",  # rings the mentioned clinicians (see staff_alert_content)
        "body": f"{overdue}\n{body}",
        "format": "org.matrix.custom.html",
        "formatted_body": f"<p><b>{html.escape(overdue)}</b></p>{formatted}",
        "m.mentions": {"user_ids": users},
        "org.hearth.escalation": escalation_summary(esc),
    }
    if reply_to:
        content["m.relates_to"] = {"m.in_reply_to": {"event_id": reply_to}}
    return content


def _service_items(services: Sequence[Any]) -> tuple[list[str], list[str]]:
    lines_plain: list[str] = []
    lines_html: list[str] = []
    for svc in services:
        how = svc.how_to_reach()
        lines_plain.append(f"• {svc.name}: {how}" + (f" ({svc.hours})" if svc.hours else ""))
        url_only = bool(svc.url and not (svc.phone or svc.text))
        how_html = (
            f'visit <a href="{html.escape(svc.url)}">{html.escape(svc.url)}</a>'
            if url_only
            else html.escape(how)
        )
        link = (
            f' · <a href="{html.escape(svc.url)}">{html.escape(svc.url)}</a>'
            if svc.url and not url_only
            else ""
        )
        hours = f" ({html.escape(svc.hours)})" if svc.hours else ""
        lines_html.append(f"<li><b>{html.escape(svc.name)}</b>: {how_html}{hours}{link}</li>")
    return lines_plain, lines_html


REGION_HINT = (
    "Somewhere else? Reply here with !region and your country's two-letter code (for example "
    "!region GB or !region US) and I'll send the lines for where you are."
)


def member_resources_content(
    locale: str | None,
    resources: CrisisResources,
    *,
    severity: str | None = None,
    theme: str | None = None,
) -> dict[str, Any]:
    """The private message offered to the person: warm, non-punitive, safe-messaging compliant
    (no method talk, no judgement), encouraging them to reach out, with services for ``locale``
    (a region code or locale) and the space's ``theme``. For imminent risk the emergency number
    comes first."""
    rs = resources.resources_for(locale)
    imminent = severity == Severity.IMMINENT.value
    intro = (
        "Hi, this is Hearth, the care bot for this community. Something you shared made us want to "
        "check in with you. You haven't done anything wrong, and you're not in any trouble."
    )
    care = (
        "If things feel really heavy right now, you don't have to carry it alone. Talking to someone "
        "can help, and these services are free and confidential:"
    )
    team = (
        "We've also let someone from our care team know, and they may reach out to you here. You're "
        "welcome to reply, or to keep talking in the group whenever you're ready."
    )
    closing = "We're glad you're here."
    emergency = f"If you're not safe right now, please call {rs.emergency}."
    if imminent:
        emergency = (
            f"If you're in danger right now, please call {rs.emergency} now, or ask someone near you to."
        )

    lines_plain, lines_html = _service_items(rs.services_for(theme))
    services_plain = care + "\n" + "\n".join(lines_plain)
    services_html = f"<p>{html.escape(care)}</p><ul>{''.join(lines_html)}</ul>"
    emergency_html = (
        f"<p><b>{html.escape(emergency)}</b></p>" if imminent else f"<p>{html.escape(emergency)}</p>"
    )
    if imminent:
        plain = [emergency, intro, services_plain, team, REGION_HINT, closing]
        formatted = [emergency_html, f"<p>{html.escape(intro)}</p>", services_html]
    else:
        plain = [intro, services_plain, emergency, team, REGION_HINT, closing]
        formatted = [f"<p>{html.escape(intro)}</p>", services_html, emergency_html]
    formatted += [f"<p>{html.escape(t)}</p>" for t in (team, REGION_HINT, closing)]
    return {
        "msgtype": "m.text",
        "body": "\n\n".join(plain),
        "format": "org.matrix.custom.html",
        "formatted_body": "".join(formatted),
        "m.mentions": {},
        "org.hearth.resources": {"region": rs.region, "locale": locale},
    }


def region_lines_content(
    region: str | None, resources: CrisisResources, *, theme: str | None = None
) -> dict[str, Any]:
    """The reply to a member's ``!region``: the lines for the region they chose (or the
    international ones when they cleared it), emergency number first."""
    rs = resources.resources_for(region)
    where = "wherever you are" if rs.region == "default" else rs.name
    head = f"Thank you. From now on I'll show you help for {where}."
    emergency = f"If you're in danger, call {rs.emergency}."
    lines_plain, lines_html = _service_items(rs.services_for(theme))
    tail = "Send !region clear to go back to the lines for your space, or !region XX for another country."
    body = "\n\n".join([head, emergency, "\n".join(lines_plain), tail])
    formatted = (
        f"<p>{html.escape(head)}</p><p><b>{html.escape(emergency)}</b></p><ul>{''.join(lines_html)}</ul>"
        f"<p>{html.escape(tail)}</p>"
    )
    return {
        "msgtype": "m.text",
        "body": body,
        "format": "org.matrix.custom.html",
        "formatted_body": formatted,
        "m.mentions": {},
        "org.hearth.resources": {"region": rs.region, "locale": region},
    }


# --- the care room ---


def _text(body: str, mentions: Sequence[str] = ()) -> dict[str, Any]:
    return {
        "msgtype": "m.text",
        "body": body,
        "format": "org.matrix.custom.html",
        "formatted_body": "".join(f"<p>{html.escape(p)}</p>" for p in body.split("\n\n")),
        "m.mentions": {"user_ids": list(mentions)},
    }


def care_join_content(clinician_name: str) -> dict[str, Any]:
    """What the person reads when a clinician joins their care room: who, why, and that they may say no."""
    return _text(
        f"{clinician_name} from Hearth's care team has joined this room. They're here because of what "
        "you shared earlier, to listen and to help you stay safe; nobody else can read this room.\n\n"
        "Reply whenever you're ready, in your own words. If you'd rather be left alone, send !alone and "
        "we'll respect that."
    )


def left_alone_content() -> dict[str, Any]:
    """The answer to ``!alone``."""
    return _text(
        "Of course. Nobody from the care team will message you here unless you write to us again.\n\n"
        "If things change, the lines above are there day and night, and you can write here whenever you want."
    )


def care_closed_content(by_name: str) -> dict[str, Any]:
    """What the person reads when their case is resolved."""
    return _text(
        f"{by_name} has closed this check-in. Thank you for talking with us.\n\n"
        "You're welcome to write here or in the groups any time, and the lines above are there day and night."
    )


def care_reply_page_content(
    esc: Escalation, *, mentions: Sequence[str], names: dict[str, str], server_name: str | None, tz: Any
) -> dict[str, Any]:
    """The staff-room page for a reply in an untaken care room: rings the on-call clinician (``m.text``
    with ``m.mentions``), says who and how to join, never the reply's text."""
    member = person(esc.sender, names)
    when = format_time(esc.care_last_reply_at, tz) if esc.care_last_reply_at else ""
    link = matrix_to_event(esc.room_id, esc.first_event_id, server_name)
    body = (
        f"💬 {member} replied in their care room ({esc.id}, {esc.severity}) at {when}: "
        f"{esc.care_replies} repl{'y' if esc.care_replies == 1 else 'ies'} so far, nobody with them yet. "
        f"Send !take {esc.id} to join them there."
    )
    if mentions:
        body += "\nOn call: " + ", ".join(person(u, names) for u in mentions)
    formatted = (
        f"<p>💬 <b>{html.escape(member)}</b> replied in their care room ({html.escape(esc.id)}, "
        f"{html.escape(esc.severity)}) at {html.escape(when)}. Send <code>!take {html.escape(esc.id)}</code> "
        f'to join them there. <a href="{html.escape(link)}">The message that raised it</a></p>'
    )
    return {
        "msgtype": "m.text",
        "body": body,
        "format": "org.matrix.custom.html",
        "formatted_body": formatted,
        "m.mentions": {"user_ids": list(mentions)},
        "org.hearth.escalation": escalation_summary(esc),
    }
