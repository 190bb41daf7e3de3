"""The research side's exception hierarchy: one root."""


class ResearchError(Exception):
    """Root of every error the research command raises on purpose; the message says what to do."""
