"""The audit package's exception hierarchy."""


class AuditError(Exception):
    """Root of every error the audit package raises on purpose."""
