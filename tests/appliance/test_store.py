"""Envelope encryption at rest: round trip, and tampering caught with an error naming the object."""

from __future__ import annotations

import pytest

from appliance.errors import IntegrityError
from appliance.security import crypto
from appliance.security.keys import Keyring, WrappedKey
from appliance.storage.store import EncryptedStore, new_object_id


@pytest.fixture
def store(tmp_path) -> EncryptedStore:
    store = EncryptedStore(tmp_path / "store", Keyring({"k1": crypto.new_key()}, "k1"))
    store.prepare()
    return store


def test_round_trip_and_ciphertext_on_disk(store):
    oid = new_object_id()
    wrapped = store.put(oid, b"PatientName=Doe^John" * 10)
    assert b"Doe^John" not in store.path_of(oid).read_bytes()
    assert store.get(oid, wrapped) == b"PatientName=Doe^John" * 10
    assert oct(store.path_of(oid).stat().st_mode & 0o777) == "0o600"


def test_flipped_ciphertext_byte_names_the_object(store):
    oid = new_object_id()
    wrapped = store.put(oid, b"x" * 1000)
    path = store.path_of(oid)
    data = bytearray(path.read_bytes())
    data[500] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match=oid):
        store.get(oid, wrapped)


def test_altered_wrapped_key_is_refused(store):
    oid = new_object_id()
    wrapped = store.put(oid, b"payload")
    blob = bytearray(wrapped.blob)
    blob[20] ^= 0x80
    with pytest.raises(IntegrityError, match=oid):
        store.get(oid, WrappedKey(wrapped.kek_id, bytes(blob)))


def test_swapped_files_are_detected(store):
    a, b = new_object_id(), new_object_id()
    wa, wb = store.put(a, b"first object"), store.put(b, b"second object")
    pa, pb = store.path_of(a), store.path_of(b)
    da, db = pa.read_bytes(), pb.read_bytes()
    pa.write_bytes(db)
    pb.write_bytes(da)
    with pytest.raises(IntegrityError, match=a):
        store.get(a, wa)
    # even with the wrapped keys swapped too, the associated data binds each to its identity
    with pytest.raises(IntegrityError, match=a):
        store.get(a, wb)


def test_truncated_file_is_refused(store):
    oid = new_object_id()
    wrapped = store.put(oid, b"y" * 100)
    path = store.path_of(oid)
    path.write_bytes(path.read_bytes()[:30])
    with pytest.raises(IntegrityError):
        store.get(oid, wrapped)
