"""Set-up tools behind `serbero init`, `serbero keys` and `serbero doctor` (docs/operations.md#doctor); no
printing here."""
