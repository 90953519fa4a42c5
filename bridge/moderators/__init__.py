"""Volunteer moderators' tools on Matrix: the moderators' room, review cards for flags and reports,
sanctions across a space with expiry, appeals and a member's file (``desk`` wires them; the domain is
``moderation.casework``)."""
