"""Crash-safe local writes shared by the appliance and the libraries: a file replaced whole or
not at all (``write_durably``), and group commit's batch taking (``take_batch``)."""

from durable.batching import take_batch
from durable.files import fsync_directory, write_durably

__all__ = ["fsync_directory", "take_batch", "write_durably"]
