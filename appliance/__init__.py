"""Composition root: configuration, keys, database, encrypted store, jobs, HTTP and CLI."""
