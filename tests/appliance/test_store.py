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


HEADER, PIXELS = b"PatientName=Roe^Jane;" * 20, bytes(range(256)) * 64


def test_an_image_stored_with_its_header_apart_reads_whole_and_header_alone(store):
    oid = new_object_id()
    wrapped = store.put(oid, HEADER + PIXELS, header_length=len(HEADER))
    on_disk = store.path_of(oid).read_bytes()
    assert on_disk.startswith(b"APLOBJ2\x00") and b"Roe^Jane" not in on_disk
    assert store.get(oid, wrapped) == HEADER + PIXELS
    assert store.get_header(oid, wrapped) == HEADER
    whole = new_object_id()  # sealed whole: the header reader gives all of it
    assert store.get_header(whole, store.put(whole, HEADER + PIXELS)) == HEADER + PIXELS


@pytest.mark.parametrize("where", ["header", "pixels", "length"])
def test_either_segment_altered_is_refused_by_the_reader_that_reads_it(store, where):
    oid = new_object_id()
    wrapped = store.put(oid, HEADER + PIXELS, header_length=len(HEADER))
    path = store.path_of(oid)
    data = bytearray(path.read_bytes())
    data[{"header": 40, "pixels": len(data) - 100, "length": 9}[where]] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match=oid):
        store.get(oid, wrapped)
    if where != "pixels":
        with pytest.raises(IntegrityError, match=oid):
            store.get_header(oid, wrapped)
    else:  # the header alone is still whole, and authentic
        assert store.get_header(oid, wrapped) == HEADER


def test_segments_cannot_be_swapped_within_an_object_or_moved_to_another(store):
    a, b = new_object_id(), new_object_id()
    wa = store.put(a, HEADER + PIXELS, header_length=len(HEADER))
    store.put(b, HEADER + PIXELS, header_length=len(HEADER))
    pa = store.path_of(a)
    da, db = pa.read_bytes(), store.path_of(b).read_bytes()
    start = 12 + int.from_bytes(da[8:12], "little")
    pa.write_bytes(da[:start] + db[start:])  # b's pixels under a's header
    with pytest.raises(IntegrityError, match=a):
        store.get(a, wa)
    head, body = da[12:start], da[start:]
    pa.write_bytes(da[:8] + len(body).to_bytes(4, "little") + body + head)  # a's own segments swapped
    with pytest.raises(IntegrityError, match=a):
        store.get_header(a, wa)
