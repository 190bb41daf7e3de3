"""The anonymizer's exception hierarchy: one root, a subclass per kind of failure."""


class AnonymizerError(Exception):
    """Root of every error the anonymizer raises on purpose."""


class ProfileError(AnonymizerError):
    """The confidentiality profile table or a named profile is missing or malformed."""


class Quarantined(AnonymizerError):
    """An object cannot be released; the message says why (never with a PHI value in it)."""


class WorkerStopped(AnonymizerError):
    """A de-identifying worker process ended without answering (killed, out of memory): what was
    done stays, and the same command goes on from there."""


class ReleaseError(AnonymizerError):
    """A dataset release could not be written or read; the message says what to do."""


class WorkspaceUnreachable(ReleaseError):
    """The workspace (folder, S3, DICOMweb) did not answer, or refused the credentials."""


class ReleaseRejected(ReleaseError):
    """A release failed verification: signature, a file's hash, a missing or an extra file."""


class NoRoom(ReleaseError):
    """The disk filled up while writing; what was written stays and the same command resumes."""


class ObjectMissing(ReleaseError):
    """A key the reader asked for is not in the workspace."""
