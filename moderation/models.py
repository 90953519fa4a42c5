"""Moderation tables (verdicts, cases)."""
