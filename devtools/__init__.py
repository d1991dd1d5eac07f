"""Build-time tools (man pages, README reference tables); not part of the installed package."""
