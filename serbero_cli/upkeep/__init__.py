"""Upkeep of the shared database: pruning old disputes (backups live in store/backup.py)."""
