"""The anonymizer's exception hierarchy: one root, a subclass per kind of failure."""


class AnonymizerError(Exception):
    """Root of every error the anonymizer raises on purpose."""


class ProfileError(AnonymizerError):
    """The confidentiality profile table or a named profile is missing or malformed."""


class Quarantined(AnonymizerError):
    """An object cannot be released; the message says why (never with a PHI value in it)."""
