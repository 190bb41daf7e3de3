"""The audit package's exception hierarchy."""


class AuditError(Exception):
    """Root of every error the audit package raises on purpose."""


class AuditIntegrityError(AuditError):
    """The log, a checkpoint or a proof is not what it should be (tampered, truncated, forged)."""


class WitnessError(AuditIntegrityError):
    """The witness cannot vouch for the log: it is missing, or older than the log's last clean stop."""
