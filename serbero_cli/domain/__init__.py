"""What every phase shares about disputes: the lifecycle, dispute events, first lines, handoffs,
and the words stored for notifications, sessions and dispatches."""
