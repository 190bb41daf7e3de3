"""The HTTP API: typed dependencies (``deps``) and one module of routes per resource (``routes``)."""
