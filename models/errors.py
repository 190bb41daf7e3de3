"""The models package's exception hierarchy."""


class ModelError(Exception):
    """Root of every error the models package raises on purpose."""


class BundleRejected(ModelError):
    """A bundle is unsigned, signed by an untrusted publisher, or differs from its signed manifest."""


class BackendUnavailable(ModelError):
    """A version's backend cannot run on this machine (no CUDA GPU, or its provider not installed)."""
