"""Stored objects and their index rows: the encrypted store, the one writer, start-up reconciliation."""
