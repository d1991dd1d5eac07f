"""What every phase shares about disputes: the lifecycle, dispute events, first lines, handoffs."""
