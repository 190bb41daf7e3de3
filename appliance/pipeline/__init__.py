"""The study's way through the box: ingest, assembly, inference runner and process, sending."""
