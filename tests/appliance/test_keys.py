"""KEK safety checks, rotation with re-wrapping only, retirement, and the env key source."""

from __future__ import annotations

import base64
import os

import pytest
from sqlmodel import select

from appliance.context import open_appliance
from appliance.db.tables import Instance
from appliance.errors import KeyMaterialError
from appliance.home import init_home
from appliance.security import crypto, rotation
from appliance.security.keys import DirectoryKeySource, EnvKeySource, WrappedKey
from appliance.storage.writer import ObjectWriter
from dicom_gateway.received import instance_from_part10
from testbed.synthetic import ct_series, write_series
from tests.support.inspect import audit_events


@pytest.fixture
def app(tmp_path):
    init_home(tmp_path / "home")
    return open_appliance(tmp_path / "home")


def key_file(app):
    return next(app.settings.key_directory.glob("kek-*.key"))


def test_world_readable_key_is_refused(app, tmp_path):
    os.chmod(key_file(app), 0o644)
    with pytest.raises(KeyMaterialError, match="readable by others"):
        open_appliance(tmp_path / "home")


@pytest.mark.parametrize("content", [b"changeme", b"\x00" * 32, b"ab" * 16, b"short"])
def test_placeholder_key_is_refused(app, tmp_path, content):
    key_file(app).write_bytes(content)
    with pytest.raises(KeyMaterialError):
        open_appliance(tmp_path / "home")


def test_env_key_source(monkeypatch):
    key = crypto.new_key()
    monkeypatch.setenv("T_KEK", base64.b64encode(key).decode())
    ring = EnvKeySource("T_KEK", "T_OLD").load()
    wrapped = ring.wrap(b"k" * 32, "object:x")
    assert ring.unwrap(wrapped, "object:x") == b"k" * 32
    monkeypatch.setenv("T_KEK", "changeme")
    with pytest.raises(KeyMaterialError, match="placeholder"):
        EnvKeySource("T_KEK", "T_OLD").load()


def _ingest(app, tmp_path, count):
    index = ObjectWriter(app)
    try:
        for path in write_series(tmp_path / "in", ct_series(count)):
            index.store(instance_from_part10(path.read_bytes(), "SCU", "APPLIANCE"))
    finally:
        index.close()


def _read_all(app):
    with app.session() as session:
        rows = session.exec(select(Instance)).all()
    return {r.sop_instance_uid: app.store.get(r.object_id, WrappedKey(r.kek_id, r.wrapped_key)) for r in rows}


def test_rotate_rewraps_without_rewriting_objects_then_retire(app, tmp_path):
    _ingest(app, tmp_path, 5)
    before = _read_all(app)
    old_id = app.keyring.active_id
    files = sorted(app.store.objects.rglob("*.enc"))
    stamps = {p: (p.stat().st_mtime_ns, p.stat().st_ino) for p in files}

    new_id, changed = rotation.rotate(app, "test")
    assert new_id != old_id and changed == 5 + 3  # five data keys; the field, audit and signing keys
    assert {p: (p.stat().st_mtime_ns, p.stat().st_ino) for p in files} == stamps

    rotation.retire(app, "test", old_id)
    assert not (app.settings.key_directory / f"kek-{old_id}.key").exists()
    reopened = open_appliance(app.settings.home)
    assert reopened.keyring.ids == [new_id]
    assert _read_all(reopened) == before
    app.audit.flush()
    descriptions = [e["description"] for e in audit_events(app.settings.home)]
    assert any("KEK rotated" in d for d in descriptions) and "KEK retired" in descriptions


def test_retire_refuses_the_active_key_and_one_still_in_use(app, tmp_path):
    _ingest(app, tmp_path, 1)
    old_id = app.keyring.active_id
    with pytest.raises(KeyMaterialError, match="is active"):
        rotation.retire(app, "test", old_id)
    DirectoryKeySource(app.settings.key_directory).create()  # a new active key, nothing re-wrapped
    with pytest.raises(KeyMaterialError, match="still wraps 4"):  # the instance and three secrets
        rotation.retire(app, "test", old_id)
    rotation.rewrap_all(app)
    with pytest.raises(KeyMaterialError, match="is active"):
        rotation.retire(app, "test", app.keyring.active_id)
    rotation.retire(app, "test", old_id)


def test_the_kek_and_the_database_password_can_come_from_secret_files(tmp_path, monkeypatch):
    import base64
    import os

    from appliance.config import Settings
    from appliance.security.keys import EnvKeySource

    kek = tmp_path / "kek"
    kek.write_text(base64.b64encode(os.urandom(32)).decode() + "\n")
    monkeypatch.delenv("APPLIANCE_KEK", raising=False)
    monkeypatch.setenv("APPLIANCE_KEK_FILE", str(kek))
    keyring = EnvKeySource("APPLIANCE_KEK", "APPLIANCE_KEK_PREVIOUS").load()
    assert keyring.active_id
    password = tmp_path / "password"
    password.write_text("s3cret/with:chars\n")
    settings = Settings(
        home=tmp_path,
        database_url="postgresql+psycopg://appliance@db:5432/appliance",
        database_password_file=password,
    )
    assert settings.sqlalchemy_url == "postgresql+psycopg://appliance:s3cret%2Fwith%3Achars@db:5432/appliance"
