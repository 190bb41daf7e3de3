"""The gateway's exception hierarchy."""


class GatewayError(Exception):
    """Root of every error the gateway raises on purpose."""


class RejectedInstance(GatewayError):
    """An instance that must be refused with a DICOM failure status.

    ``status`` is the C-STORE status to return, ``comment`` the Error Comment (no PHI).
    """

    def __init__(self, status: int, comment: str) -> None:
        super().__init__(f"0x{status:04X}: {comment}")
        self.status = status
        self.comment = comment


class SendError(GatewayError):
    """A C-STORE or C-ECHO to a remote AE did not succeed."""


class DicomwebRefused(GatewayError):
    """A DICOMweb request answered with an HTTP error: ``status`` and a reason safe to show (no PHI)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
