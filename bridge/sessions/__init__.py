"""Group sessions, run by the service: ``desk`` (timers rebuilt from the database, opening and
closing rooms, reminders, attendance, facilitators) and ``commands`` (``!session`` for moderators;
``!sessions``, ``!remind``, ``!level``, ``!start``, ``!end`` for members and facilitators)."""
