"""The key-encryption key (KEK) ring: loading, safety checks, wrapping data keys, rotation.

Key sources:

* ``directory`` (default): ``keys/kek-<id>.key`` files (32 random bytes, mode 0600) and
  ``keys/ACTIVE`` naming the one that wraps new data keys. ``rotate`` adds a key and makes it
  active; ``retire`` deletes one that no longer wraps anything.
* ``env``: the active KEK, base64, in ``$APPLIANCE_KEK``; earlier ones, comma-separated, in
  ``$APPLIANCE_KEK_PREVIOUS`` while data keys are re-wrapped.

A key's id is the first 16 hex digits of its SHA-256: it names the key without revealing it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from appliance.config import Settings
from appliance.errors import IntegrityError, KeyMaterialError
from appliance.security import crypto
from durable import write_durably

ACTIVE_FILE = "ACTIVE"
_MIN_DISTINCT_BYTES = 12
_REFRESH_SECONDS = 5.0
_PLACEHOLDERS = {b"changeme", b"change-me", b"placeholder", b"secret", b"password", b"xxxxxxxx"}


def key_id(key: bytes) -> str:
    return hashlib.sha256(b"appliance-kek-id|" + key).hexdigest()[:16]


def check_key_strength(key: bytes, where: str) -> None:
    """Refuse a key of the wrong length or one that is plainly a placeholder."""
    if key.strip().lower() in _PLACEHOLDERS:
        raise KeyMaterialError(f"{where} holds a placeholder, not a key; generate one with 'appliance init'")
    if len(key) != crypto.KEY_BYTES:
        raise KeyMaterialError(f"{where} holds {len(key)} bytes; a key is {crypto.KEY_BYTES} random bytes")
    if len(set(key)) < _MIN_DISTINCT_BYTES:
        raise KeyMaterialError(f"{where} is not random (a placeholder or a repeated pattern); refusing it")


@dataclass(frozen=True)
class WrappedKey:
    """A data key sealed under the KEK ``kek_id``, bound to the object it protects."""

    kek_id: str
    blob: bytes


def _wrap_aad(kek_id: str, purpose: str) -> bytes:
    return f"appliance-wrapped-key|v1|{kek_id}|{purpose}".encode()


class Keyring:
    """The KEKs the appliance can use: one active for wrapping, all of them for unwrapping.

    A keyring made by a key source re-reads it every few seconds, so that a running appliance
    follows ``appliance keys rotate`` run from the CLI.
    """

    def __init__(
        self,
        keys: dict[str, bytes],
        active_id: str,
        loader: Callable[[], tuple[dict[str, bytes], str]] | None = None,
    ) -> None:
        self._set(keys, active_id)
        self._loader = loader
        self._loaded_at = time.monotonic()

    def _set(self, keys: dict[str, bytes], active_id: str) -> None:
        if active_id not in keys:
            raise KeyMaterialError(f"active KEK {active_id} is not among the loaded keys")
        self._keys = keys
        self.active_id = active_id

    def refresh(self, max_age: float = 0.0) -> None:
        if self._loader is not None and time.monotonic() - self._loaded_at >= max_age:
            self._set(*self._loader())
            self._loaded_at = time.monotonic()

    @property
    def ids(self) -> list[str]:
        return sorted(self._keys)

    def wrap(self, data_key: bytes, purpose: str) -> WrappedKey:
        self.refresh(_REFRESH_SECONDS)
        blob = crypto.seal(self._keys[self.active_id], data_key, _wrap_aad(self.active_id, purpose))
        return WrappedKey(self.active_id, blob)

    def unwrap(self, wrapped: WrappedKey, purpose: str) -> bytes:
        if wrapped.kek_id not in self._keys:
            self.refresh()
        kek = self._keys.get(wrapped.kek_id)
        if kek is None:
            raise KeyMaterialError(
                f"data key of {purpose} is wrapped by KEK {wrapped.kek_id}, which is not loaded "
                f"(loaded: {', '.join(self.ids)}); restore that key or re-wrap before retiring it"
            )
        try:
            return crypto.open_sealed(kek, wrapped.blob, _wrap_aad(wrapped.kek_id, purpose))
        except crypto.AuthenticationFailed as exc:
            raise IntegrityError(
                f"wrapped data key of {purpose} failed authentication under KEK {wrapped.kek_id}: "
                "it was altered or belongs to another object"
            ) from exc

    def rewrap(self, wrapped: WrappedKey, purpose: str) -> WrappedKey:
        if wrapped.kek_id == self.active_id:
            return wrapped
        return self.wrap(self.unwrap(wrapped, purpose), purpose)


def read_key_file(path: Path, what: str = "KEK file") -> bytes:
    """A key file: private to its owner (mode 0600) and 32 random bytes."""
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyMaterialError(
            f"{what} {path} is readable by others (mode {stat.S_IMODE(mode):04o}); run 'chmod 600 {path}'"
        )
    key = path.read_bytes()
    check_key_strength(key, f"{what} {path}")
    return key


def _decode_env_key(value: str, name: str) -> bytes:
    if value.strip().lower().encode() in _PLACEHOLDERS:
        raise KeyMaterialError(f"${name} holds a placeholder, not a key")
    try:
        key = base64.b64decode(value.strip(), validate=True)
    except binascii.Error:
        key = value.strip().encode()
    check_key_strength(key, f"${name}")
    return key


class DirectoryKeySource:
    """KEK files in a directory of the home, one of them named active."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def load(self) -> Keyring:
        return Keyring(*self._read(), loader=self._read)

    def _read(self) -> tuple[dict[str, bytes], str]:
        active_file = self.directory / ACTIVE_FILE
        if not active_file.is_file():
            raise KeyMaterialError(
                f"no active KEK: {active_file} is missing; run 'appliance init' or configure keys.source"
            )
        keys = {}
        for path in sorted(self.directory.glob("kek-*.key")):
            key = read_key_file(path)
            keys[key_id(key)] = key
        return keys, active_file.read_text().strip()

    def create(self) -> str:
        """Generate a new KEK, make it active, and return its id."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        key = crypto.new_key()
        kid = key_id(key)
        write_durably(self.directory / f"kek-{kid}.key", key, mode=0o600)
        write_durably(self.directory / ACTIVE_FILE, kid.encode(), mode=0o600)
        return kid

    def retire(self, kid: str) -> None:
        active = (self.directory / ACTIVE_FILE).read_text().strip()
        if kid == active:
            raise KeyMaterialError(f"KEK {kid} is active; rotate first, then retire it")
        path = self.directory / f"kek-{kid}.key"
        if not path.exists():
            raise KeyMaterialError(f"no KEK {kid} in {self.directory}")
        path.unlink()


class EnvKeySource:
    """The active KEK in one variable, earlier ones in another (rotation happens outside)."""

    def __init__(self, kek_env: str, previous_env: str) -> None:
        self.kek_env = kek_env
        self.previous_env = previous_env

    def load(self) -> Keyring:
        value = os.environ.get(self.kek_env) or _from_file(f"{self.kek_env}_FILE")
        if not value:
            raise KeyMaterialError(
                f"keys.source is 'env' but neither ${self.kek_env} nor ${self.kek_env}_FILE is set"
            )
        active = _decode_env_key(value, self.kek_env)
        keys = {key_id(active): active}
        for item in filter(None, os.environ.get(self.previous_env, "").split(",")):
            old = _decode_env_key(item, self.previous_env)
            keys[key_id(old)] = old
        return Keyring(keys, key_id(active))


def _from_file(variable: str) -> str | None:
    """The secret in the file ``$variable`` names (a container's secret), if it names one."""
    path = os.environ.get(variable)
    if not path:
        return None
    try:
        return Path(path).read_text().strip()
    except OSError as exc:
        raise KeyMaterialError(f"${variable} names {path}, which cannot be read ({exc.strerror})") from None


def key_source(settings: Settings) -> DirectoryKeySource | EnvKeySource:
    if settings.keys.source == "env":
        return EnvKeySource(settings.keys.kek_env, settings.keys.previous_kek_env)
    return DirectoryKeySource(settings.key_directory)
