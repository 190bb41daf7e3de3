"""RFC 6962 Merkle code against transparency-dev's test vectors (shared/vectors/merkle)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from audit import merkle

VECTORS = Path(__file__).resolve().parents[2].parent / "shared" / "vectors" / "merkle"


def _cases(kind: str) -> list[Path]:
    cases = sorted((VECTORS / kind).rglob("*.json"))
    assert cases, f"no {kind} vectors under {VECTORS}"
    return cases


def _b(value: str | None) -> bytes:
    return base64.b64decode(value) if value else b""


@pytest.mark.parametrize("path", _cases("inclusion"), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_inclusion_vectors(path: Path):
    case = json.loads(path.read_text())
    proof = [_b(p) for p in case.get("proof") or []]
    check = lambda: merkle.verify_inclusion(  # noqa: E731
        case["leafIdx"], case["treeSize"], _b(case["leafHash"]), proof, _b(case["root"])
    )
    if case["wantErr"]:
        with pytest.raises(merkle.ProofError):
            check()
    else:
        check()


@pytest.mark.parametrize("path", _cases("consistency"), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_consistency_vectors(path: Path):
    case = json.loads(path.read_text())
    proof = [_b(p) for p in case.get("proof") or []]
    check = lambda: merkle.verify_consistency(  # noqa: E731
        case["size1"], case["size2"], _b(case["root1"]), _b(case["root2"]), proof
    )
    if case["wantErr"]:
        with pytest.raises(merkle.ProofError):
            check()
    else:
        check()


def test_generated_proofs_verify_for_every_size():
    leaves = [merkle.leaf_hash(bytes([i])) for i in range(40)]
    for size in range(1, 41):
        tree = leaves[:size]
        tree_root = merkle.root(tree)
        for index in range(size):
            merkle.verify_inclusion(index, size, tree[index], merkle.inclusion_proof(tree, index), tree_root)
        for old in range(1, size + 1):
            proof = merkle.consistency_proof(tree, old)
            merkle.verify_consistency(old, size, merkle.root(leaves[:old]), tree_root, proof)
