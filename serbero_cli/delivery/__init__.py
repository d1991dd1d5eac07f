"""Getting messages to solvers and observers: the outbox, audiences and envelopes, inbox relays."""
