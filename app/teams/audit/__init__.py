"""The audit trail: who changed a team's billing settings and members, when, from what to what."""
