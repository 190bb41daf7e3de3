"""Verification of a log directory with the appliance's public key only (no decryption key).

Checks, in order, and raises :class:`AuditIntegrityError` naming the first bad entry or
checkpoint:

1. every record is whole and its chain value follows from the previous one (an edited, deleted,
   inserted or reordered entry breaks the chain at that entry);
2. every checkpoint in the log directory and in the witness file is signed by the appliance's key
   and its root equals the root recomputed from the entries at its size (this also proves each
   checkpoint consistent with every later one, since all are prefixes of one recomputed tree; a
   checkpoint beyond the log's end means a truncated or rolled-back log);
3. given an auditor's checkpoint, an RFC 6962 consistency proof from it to the current tree;
4. given the witness, that it exists and holds a checkpoint at least as new as the log's last
   clean stop (:class:`WitnessError`): entries after the newest checkpoint can be cut without a
   trace (the writer signs one at most ``checkpoint_seconds`` after an entry), but not entries a
   clean stop covered.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from audit import checkpoint, merkle
from audit.errors import AuditIntegrityError, WitnessError
from audit.log import CHECKPOINTS, CLEAN_STOPS, ENTRIES, GENESIS, chain_next, read_records


@dataclass(frozen=True)
class Verified:
    entries: int
    root: bytes
    checkpoints: int
    witnessed: int


def leaf_hashes(directory: Path) -> list[bytes]:
    """Leaf hashes of every entry, checking framing and the hash chain on the way."""
    hashes: list[bytes] = []
    chain = GENESIS
    for record in read_records(directory / ENTRIES):
        hashed = merkle.leaf_hash(record.sealed)
        chain = chain_next(chain, hashed)
        if record.chain != chain:
            raise AuditIntegrityError(
                f"entry {record.index}: hash chain broken (the entry, or one just before it, was "
                "altered, deleted, inserted or moved)"
            )
        hashes.append(hashed)
    return hashes


def _signed(
    notes: list[tuple[str, str]], public_key: Ed25519PublicKey, origin: str
) -> list[tuple[str, checkpoint.Checkpoint]]:
    verified = []
    for name, note in notes:
        try:
            verified.append((name, checkpoint.verify(note, public_key, origin)))
        except checkpoint.CheckpointError as exc:
            raise AuditIntegrityError(f"{name}: {exc}") from exc
    return verified


def _log_notes(directory: Path) -> list[tuple[str, str]]:
    return [(f"checkpoint {p.name}", p.read_text()) for p in sorted((directory / CHECKPOINTS).glob("*.note"))]


def _notes_in(path: Path, what: str) -> list[tuple[str, str]]:
    """The checkpoint notes of a JSON-lines file (the witness, the clean stops)."""
    if not path.exists():
        return []
    notes = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        try:
            notes.append((f"{what} {number}", json.loads(line)["note"]))
        except (ValueError, KeyError) as exc:
            raise AuditIntegrityError(f"{what} {number}: not a checkpoint record") from exc
    return notes


def verify_log(
    directory: Path,
    public_key: Ed25519PublicKey,
    origin: str,
    witness: Path | None = None,
    auditor_checkpoint: str | None = None,
) -> Verified:
    hashes = leaf_hashes(directory)
    in_log = _signed(_log_notes(directory), public_key, origin)
    stops = _signed(_notes_in(directory / CLEAN_STOPS, "clean stop"), public_key, origin)
    if witness is not None and not witness.exists():
        raise WitnessError(
            f"the witness {witness.name} is missing: nothing vouches for the log's last entries"
        )
    witnessed = _signed(_notes_in(witness, "witness checkpoint") if witness else [], public_key, origin)
    claims = sorted(in_log + stops + witnessed, key=lambda item: item[1].size)
    sizes = {cp.size for _, cp in claims}
    roots: dict[int, bytes] = {}
    tree = merkle.CompactRange()
    for hashed in hashes:
        tree.append(hashed)
        if tree.size in sizes:
            roots[tree.size] = tree.root()
    for name, cp in claims:
        if cp.size > len(hashes):
            raise AuditIntegrityError(
                f"{name}: signed for {cp.size} entries but the log holds {len(hashes)} "
                "(truncated, or rolled back)"
            )
        if roots[cp.size] != cp.root:
            raise AuditIntegrityError(
                f"{name}: root at size {cp.size} differs from the entries' (entries before "
                f"{cp.size} were replaced, e.g. a tail rewritten after a rollback)"
            )
    if witness is not None:
        last_stop = max((cp.size for _, cp in stops), default=0)
        newest_witnessed = max((cp.size for _, cp in witnessed), default=0)
        if newest_witnessed < last_stop:
            raise WitnessError(
                f"the witness's newest checkpoint ({newest_witnessed} entries) is older than the log's "
                f"last clean stop ({last_stop} entries): the witness was cut or replaced"
            )
    current = tree.root()
    if auditor_checkpoint is not None:
        ((_, held),) = _signed([("auditor's checkpoint", auditor_checkpoint)], public_key, origin)
        if held.size > len(hashes):
            raise AuditIntegrityError(
                f"auditor's checkpoint: signed for {held.size} entries but the log holds {len(hashes)}"
            )
        proof = merkle.consistency_proof(hashes, held.size) if held.size else []
        try:
            merkle.verify_consistency(held.size, len(hashes), held.root, current, proof)
        except merkle.ProofError as exc:
            raise AuditIntegrityError(f"auditor's checkpoint: the log does not extend it ({exc})") from exc
    return Verified(len(hashes), current, len(in_log), len(witnessed))
