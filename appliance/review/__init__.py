"""Clinicians' review of AI results: their assessments (accept, reject, correct), each kept with the
result, audited, and sent to the PACS as an SR; a correction's SEG is the case's label for research."""
