"""De-identification (PS3.15 Annex E), keyed pseudonyms, free-text and pixel scrubbing, PHI gate.

``Deidentifier`` (engine.py) turns one dataset into its de-identified copy or quarantines it;
``deidentify_tree`` (batch.py) does a file or folder offline. Nothing here needs a database.
"""
