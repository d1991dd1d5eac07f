"""Serbero: a dispute coordinator for Mostro over Nostr."""

__version__ = "0.1.0"
