"""Audit events in the DICOM PS3.15 A.5 vocabulary, and the sink interface that records them."""
