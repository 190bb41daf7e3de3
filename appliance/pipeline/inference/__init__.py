"""The inference runner (main process) and the inference process it drives, and their messages."""
