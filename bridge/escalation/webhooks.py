"""Webhook signing (Stripe-style: HMAC-SHA256 over ``<timestamp>.<body>``) and its verification."""

from __future__ import annotations

import hashlib
import hmac
import json

from moderation.escalation.tables import Notification

# ---------------------------------------------------------------------------------------------
# Webhook signing (Stripe-style: HMAC-SHA256 over "<timestamp>.<body>")


def webhook_body(notif: Notification) -> bytes:
    """The exact bytes to POST for a webhook notification (canonical JSON of its payload, plus the
    notification's ``txn_id`` as ``id`` so the receiver can deduplicate retries)."""
    return json.dumps({"id": notif.txn_id, **notif.payload}, sort_keys=True, separators=(",", ":")).encode()


def sign_webhook(secret: bytes, body: bytes, timestamp: int) -> str:
    """``t=<timestamp>,v1=<hex HMAC-SHA256(secret, "<timestamp>." + body)>`` for the signature header."""
    mac = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify_webhook(secret: bytes, body: bytes, header: str, *, now_ts: int, tolerance: int = 300) -> bool:
    """Whether ``header`` is a valid signature of ``body`` made within ``tolerance`` seconds of ``now_ts``."""
    try:
        fields: dict[str, list[str]] = {}
        for part in header.split(","):
            k, _, v = part.strip().partition("=")
            fields.setdefault(k, []).append(v)
        ts = int(fields["t"][0])
    except (KeyError, ValueError, IndexError):
        return False
    if abs(now_ts - ts) > tolerance:
        return False
    expected = sign_webhook(secret, body, ts).split("v1=", 1)[1]
    return any(hmac.compare_digest(expected, v) for v in fields.get("v1", []))
