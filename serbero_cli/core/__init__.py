"""`serbero listen`: dispute events, lifecycle rules, solver messages, the outbox and the sweep."""
