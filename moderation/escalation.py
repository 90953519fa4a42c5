"""Escalation state machine."""
