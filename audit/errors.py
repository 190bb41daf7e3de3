"""The audit package's exception hierarchy."""


class AuditError(Exception):
    """Root of every error the audit package raises on purpose."""


class AuditIntegrityError(AuditError):
    """The log, a checkpoint or a proof is not what it should be (tampered, truncated, forged)."""
