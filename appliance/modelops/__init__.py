"""A model's life after import: lineage checks, candidates fetched from the workspace, validation on
the held-out set, promotion and rollback."""
