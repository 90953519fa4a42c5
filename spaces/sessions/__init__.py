"""Group sessions: recurring facilitated sessions in group-session rooms (``recurrence``: when, in
the session's time zone; ``tables``; ``store``: series, dates, who leads, reminders, attendance and
private exposure levels; ``schedule``: what members read). Pure domain: ``bridge.sessions`` runs it.

This package file imports nothing, so ``spaces.themes`` can use ``spaces.sessions.recurrence``
without a cycle (the store reads themes).
"""
