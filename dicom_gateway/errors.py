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
