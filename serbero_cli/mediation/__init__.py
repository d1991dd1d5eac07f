"""`mediate-once`: policy decisions, eligibility, sessions, transcript, escalation, reports."""
