"""The environments end-to-end tests start the appliance with: short timings, inference off or on."""

from __future__ import annotations

# Short timings so assembly, retries and polling finish within a test.
FAST = {
    "APPLIANCE_ASSEMBLY__QUIET_SECONDS": "1",
    "APPLIANCE_ASSEMBLY__POLL_SECONDS": "0.2",
    "APPLIANCE_DICOM__MIN_FREE_BYTES": str(1024 * 1024),
    "APPLIANCE_SEND__BACKOFF_INITIAL_SECONDS": "0.5",
    "APPLIANCE_SEND__BACKOFF_MAX_SECONDS": "2",
    "APPLIANCE_SEND__POLL_SECONDS": "0.2",
    "APPLIANCE_INFERENCE__ENABLED": "false",  # the inference tests turn it on (see INFERENCE)
}
INFERENCE = {
    **FAST,
    "APPLIANCE_INFERENCE__ENABLED": "true",
    "APPLIANCE_INFERENCE__POLL_SECONDS": "0.2",
    "APPLIANCE_INFERENCE__RETRY_SECONDS": "0.5",
}
