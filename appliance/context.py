"""The opened appliance: settings, keys, database, store and audit sink, wired once."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import Engine
from sqlmodel import Session, select

from appliance.config import Settings, load_settings
from appliance.db.engine import make_engine, migrate
from appliance.db.tables import WrappedSecret
from appliance.security import crypto
from appliance.security.keys import Keyring, WrappedKey, key_source
from appliance.security.phi import FIELD_KEY_NAME, FieldCipher
from appliance.storage.store import EncryptedStore
from audit.log import AuditLog


@dataclass
class Appliance:
    settings: Settings
    engine: Engine
    keyring: Keyring
    store: EncryptedStore
    fields: FieldCipher
    audit: AuditLog
    audit_key: bytes

    def session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    @property
    def signing_public_key_path(self) -> Path:
        return self.settings.home / SIGNING_PUBLIC_KEY

    def close(self) -> None:
        """Write what the audit log holds (and a checkpoint), release the database."""
        self.audit.close()
        self.engine.dispose()


def _secret_purpose(name: str) -> str:
    return f"secret:{name}"


def load_or_create_secret(engine: Engine, keyring: Keyring, name: str) -> bytes:
    """A random secret of the appliance, kept wrapped by the KEK in the database."""
    with Session(engine) as session:
        row = session.get(WrappedSecret, name)
        if row is None:
            secret = crypto.new_key()
            wrapped = keyring.wrap(secret, _secret_purpose(name))
            session.add(WrappedSecret(name=name, kek_id=wrapped.kek_id, blob=wrapped.blob))
            session.commit()
            return secret
        return keyring.unwrap(WrappedKey(row.kek_id, row.blob), _secret_purpose(name))


def rewrap_secrets(session: Session, keyring: Keyring) -> int:
    count = 0
    for row in session.exec(select(WrappedSecret)).all():
        wrapped = keyring.rewrap(WrappedKey(row.kek_id, row.blob), _secret_purpose(row.name))
        if wrapped.kek_id != row.kek_id:
            row.kek_id, row.blob = wrapped.kek_id, wrapped.blob
            session.add(row)
            count += 1
    return count


SIGNING_KEY_NAME = "audit-signing-key"  # the wrapped secret: signs checkpoints and compliance reports
SIGNING_PUBLIC_KEY = f"{SIGNING_KEY_NAME}.pub"


def report_signing_key(app: Appliance) -> Ed25519PrivateKey:
    """The audit signing key, which also signs the reports auditors read (compliance, model
    validation): they verify with the public key they hold for the log's checkpoints."""
    return Ed25519PrivateKey.from_private_bytes(
        load_or_create_secret(app.engine, app.keyring, SIGNING_KEY_NAME)
    )


def _audit_log(settings: Settings, engine: Engine, keyring: Keyring) -> tuple[AuditLog, bytes]:
    """The audit log, with its own encryption key and the appliance's signing key (both KEK-wrapped)."""
    key = load_or_create_secret(engine, keyring, "audit-log-key")
    signing = Ed25519PrivateKey.from_private_bytes(load_or_create_secret(engine, keyring, SIGNING_KEY_NAME))
    public = settings.home / SIGNING_PUBLIC_KEY
    if not public.exists():
        public.write_bytes(signing.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    audit = settings.audit
    log = AuditLog(
        settings.path(audit.directory),
        key,
        signing,
        audit.origin,
        settings.path(audit.witness),
        audit.checkpoint_every,
        audit.checkpoint_seconds,
    )
    return log, key


def open_appliance(home: Path, migrate_schema: bool = True) -> Appliance:
    """The appliance's parts over ``home``, its database schema first brought up to date (a
    process the main process starts leaves that to it: Alembic alone is 10 MiB of memory)."""
    settings = load_settings(home)
    keyring = key_source(settings).load()
    engine = make_engine(settings.sqlalchemy_url)
    if migrate_schema:
        migrate(engine)
    fields = FieldCipher(load_or_create_secret(engine, keyring, FIELD_KEY_NAME))
    store = EncryptedStore(settings.store_path, keyring)
    store.prepare()
    audit, audit_key = _audit_log(settings, engine, keyring)
    return Appliance(
        settings=settings,
        engine=engine,
        keyring=keyring,
        store=store,
        fields=fields,
        audit=audit,
        audit_key=audit_key,
    )
