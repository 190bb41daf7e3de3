"""DSSE envelopes (Dead Simple Signing Envelope, v1) signed with Ed25519.

The signature covers the pre-authentication encoding ``DSSEv1 <len type> <type> <len body> <body>``,
so neither the payload type nor the payload can be swapped. ``keyid`` is the SHA-256 of the signer's
raw public key: it names the key, it does not make it trusted; the verifier brings the trusted keys.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from anonymizer.errors import ReleaseRejected

IN_TOTO_PAYLOAD = "application/vnd.in-toto+json"


def pae(payload_type: str, body: bytes) -> bytes:
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(body), body)


def key_id(key: Ed25519PublicKey) -> str:
    return hashlib.sha256(key.public_bytes(Encoding.Raw, PublicFormat.Raw)).hexdigest()


def sign(body: bytes, key: Ed25519PrivateKey, payload_type: str = IN_TOTO_PAYLOAD) -> bytes:
    """The envelope (JSON bytes) holding ``body`` and its signature."""
    envelope = {
        "payloadType": payload_type,
        "payload": base64.b64encode(body).decode(),
        "signatures": [
            {
                "keyid": key_id(key.public_key()),
                "sig": base64.b64encode(key.sign(pae(payload_type, body))).decode(),
            }
        ],
    }
    return json.dumps(envelope, indent=2).encode()


def verify(envelope: bytes, trusted: list[Ed25519PublicKey], payload_type: str = IN_TOTO_PAYLOAD) -> bytes:
    """The payload of ``envelope`` if one of ``trusted`` signed it; else ReleaseRejected saying why."""
    try:
        parsed = json.loads(envelope)
        kind, body = parsed["payloadType"], base64.b64decode(parsed["payload"], validate=True)
        signatures = [base64.b64decode(s["sig"], validate=True) for s in parsed["signatures"]]
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise ReleaseRejected("the manifest is not a DSSE envelope (unreadable JSON or fields)") from None
    if kind != payload_type:
        raise ReleaseRejected(f"the manifest's payload type is {kind!r}, not {payload_type!r}")
    signed = pae(kind, body)
    for key in trusted:
        for signature in signatures:
            try:
                key.verify(signature, signed)
                return body
            except InvalidSignature:
                continue
    raise ReleaseRejected(
        "the manifest's signature does not verify with the trusted key: altered, or signed by another key"
    )
