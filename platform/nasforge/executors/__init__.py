"""Executors run the trials of a search: ``local`` (in-process, the default)."""
