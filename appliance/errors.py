"""The appliance's exception hierarchy: one root, a subclass per kind of failure."""


class ApplianceError(Exception):
    """Root of every error the appliance raises on purpose."""


class ConfigError(ApplianceError):
    """The configuration or the appliance home is missing, malformed or unsafe."""


class KeyMaterialError(ApplianceError):
    """A key is missing, unsafe (placeholder, world-readable) or unknown."""


class IntegrityError(ApplianceError):
    """Stored data failed authentication: tampered, swapped or wrapped under another identity."""


class StoreError(ApplianceError):
    """The encrypted store could not write or find an object."""


class NotFound(ApplianceError):
    """A named record (source, destination, job, model) does not exist."""


class AccessRefused(ApplianceError):
    """A person's request is refused: not signed in, wrong role, outside their scope, or locked out.

    ``status`` is the HTTP status that says so (401, 403, 429); the message is safe to show them."""

    status = 403

    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        if status is not None:
            self.status = status
