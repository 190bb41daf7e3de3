"""The pseudonymisation secret and the encrypted map from research pseudonyms back to patients.

The secret is a KEK-wrapped appliance secret (it never leaves the box); the map holds each patient's
ID and name only encrypted under the database field key, for authorised re-identification.
"""

from __future__ import annotations

from anonymizer.engine import PatientLink
from appliance.context import Appliance, load_or_create_secret
from appliance.db.tables import Pseudonym

SECRET_NAME = "pseudonymisation-secret"


def pseudonymisation_secret(app: Appliance) -> bytes:
    return load_or_create_secret(app.engine, app.keyring, SECRET_NAME)


class PseudonymMap:
    """Records each new pseudonym once, encrypted; ``save`` commits what was recorded."""

    def __init__(self, app: Appliance) -> None:
        self._app = app
        self._seen: dict[str, PatientLink] = {}

    def record(self, link: PatientLink) -> None:
        self._seen.setdefault(link.pseudonym, link)

    def save(self) -> int:
        added = 0
        with self._app.session() as session:
            for pseudonym, link in self._seen.items():
                if session.get(Pseudonym, pseudonym) is None:
                    session.add(
                        Pseudonym(
                            pseudonym=pseudonym,
                            patient_id_enc=self._app.fields.encrypt("pseudonym.patient_id", link.patient_id),
                            name_enc=self._app.fields.encrypt("pseudonym.name", link.patient_name),
                        )
                    )
                    added += 1
            session.commit()
        return added

    def lookup(self, pseudonym: str) -> PatientLink | None:
        with self._app.session() as session:
            row = session.get(Pseudonym, pseudonym)
        if row is None:
            return None
        return PatientLink(
            pseudonym,
            self._app.fields.decrypt("pseudonym.patient_id", row.patient_id_enc),
            self._app.fields.decrypt("pseudonym.name", row.name_enc),
        )
