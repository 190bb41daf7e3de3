"""What configuration drift is measured on: a SHA-256 per part of the configuration, so that a
report says which part changed since the last one (the audit log says who changed it, and when)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlmodel import select

from appliance.context import Appliance
from appliance.db.tables import Destination, Model, Source, UserAccount

# the columns that are configuration (not counters, times of use or secrets)
_TABLES: dict[str, tuple[type, tuple[str, ...]]] = {
    "sources": (Source, ("name", "ae_title", "host", "tls_subject")),
    "destinations": (Destination, ("name", "ae_title", "host", "port", "tls", "results")),
    "models": (Model, ("name", "version", "publisher", "state")),
    "accounts": (UserAccount, ("username", "role", "disabled", "sources", "modalities")),
}


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def fingerprint(app: Appliance) -> dict[str, str]:
    """Each part's SHA-256: the settings (``appliance.toml`` and the environment), then the tables."""
    settings = app.settings.model_dump(mode="json", exclude={"home"})
    parts = {"settings": _digest(settings)}
    with app.session() as session:
        for part, (table, columns) in _TABLES.items():
            rows = session.exec(select(table)).all()
            parts[part] = _digest(sorted(([getattr(row, c) for c in columns] for row in rows), key=str))
    return parts


def drift(previous: dict[str, str], now: dict[str, str]) -> list[str]:
    """The parts that changed (appeared, went or differ)."""
    return sorted(part for part in previous.keys() | now.keys() if previous.get(part) != now.get(part))
