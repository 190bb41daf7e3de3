"""Routes, one module per resource; who may call each is in ``appliance.access.rules``."""
