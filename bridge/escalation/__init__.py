"""Crisis escalation, the bridge side: the desk and its parts, by job.

- ``desk``: :class:`EscalationDesk`, the one way in (implements ``moderation.escalation.EscalationPort``)
  and every staff action;
- ``notifier``: delivers the outbox (staff notices in order; the person's resources, the care room
  and webhooks in the background);
- ``staff_room``: the staff room and the names alerts use;
- ``commands``: reactions and ``!`` commands in the staff room;
- ``timers``: SLA deadlines as scheduler jobs, rebuilt from the database;
- ``render``: alert, re-page, resources and care-room message contents;
- ``webhooks``: signing and verifying webhook bodies;
- ``config``: the staff file, helpline catalogue and tuning, checked at start-up.
"""
