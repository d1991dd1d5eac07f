"""The only place that imports nostr_sdk: keys, the relay pool, NIP-17 DMs, Mostro messages, dispute chat."""
