"""Set-up tools behind `serbero init`, `serbero keys` and `serbero doctor` (operations.md §2); no printing here."""
