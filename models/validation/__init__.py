"""Validating a candidate model version against the active one: metrics, bootstrap intervals and the
modification protocol that decides pass or fail."""
