"""`serbero listen`: fetch dispute events, apply them, remind solvers, deliver the outbox."""
