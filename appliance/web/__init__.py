"""The HTTP service: health today; accounts, API and pages come with the web issues."""
