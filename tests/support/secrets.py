"""Pseudonymisation secrets for the de-identification tests (test values, never a real key)."""

SECRET = bytes(range(32))
OTHER_SECRET = bytes(range(100, 132))
