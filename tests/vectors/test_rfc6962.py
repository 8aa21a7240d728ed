"""coldsign's Merkle tree against the Certificate Transparency RFC 6962 vectors (README beside the data).

Valid proofs must be reproduced exactly and verify; each is then corrupted the way the source's
own tests do it (wrong index or size, wrong root or leaf, extra or missing or flipped components)
and every corruption must fail verification.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from coldsign.ceremony import merkle

DATA = json.loads((Path(__file__).parent / "rfc6962" / "vectors.json").read_text())
LEAVES = [bytes.fromhex(x) for x in DATA["leaves"]]
ROOTS = [bytes.fromhex(x) for x in DATA["roots"]]
LEAF_HASHES = [merkle.leaf_hash(x) for x in LEAVES]
SOME_HASH = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")


def _flip(proof: list[bytes], i: int, bit: int) -> list[bytes]:
    out = list(proof)
    out[i] = bytes([out[i][0] ^ bit]) + out[i][1:]
    return out


def test_empty_tree_hash():
    assert merkle.EMPTY_ROOT.hex() == DATA["empty_root"]
    assert merkle.tree_hash([]) == merkle.EMPTY_ROOT


@pytest.mark.parametrize("size", range(1, 9))
def test_roots(size):
    assert merkle.tree_hash(LEAVES[:size]) == ROOTS[size - 1]


@pytest.mark.parametrize("case", DATA["inclusion"], ids=lambda c: f"leaf{c['leaf']}-size{c['size']}")
def test_inclusion_vectors(case):
    index, size = case["leaf"] - 1, case["size"]
    proof = [bytes.fromhex(x) for x in case["proof"]]
    root = ROOTS[size - 1]
    leaf = LEAF_HASHES[index]
    assert merkle.inclusion_proof(LEAF_HASHES[:size], index) == proof
    assert merkle.verify_inclusion(leaf, index, size, proof, root)
    bad = [
        (index - 1, size, root, leaf, proof), (index + 1, size, root, leaf, proof),
        (index ^ 2, size, root, leaf, proof), (index, size * 2, root, leaf, proof),
        (index, size // 2, root, leaf, proof), (index, size, root, b"WrongLeaf", proof),
        (index, size, merkle.EMPTY_ROOT, leaf, proof), (index, size, SOME_HASH, leaf, proof),
        (index, size, root, leaf, proof + [b""]), (index, size, root, leaf, proof + [root]),
        (index, size, root, leaf, [b""] + proof), (index, size, root, leaf, [root] + proof),
    ]
    bad += [(index, size, root, leaf, _flip(proof, i, 8)) for i in range(len(proof))]
    if proof:
        bad.append((index, size, root, leaf, proof[:-1]))
    if len(proof) > 1:
        bad.append((index, size, root, leaf, [proof[0], SOME_HASH] + proof[1:]))
    for i, s, r, lf, p in bad:
        assert not merkle.verify_inclusion(lf, i, s, p, r), (i, s)


@pytest.mark.parametrize("case", DATA["consistency"], ids=lambda c: f"{c['size1']}-{c['size2']}")
def test_consistency_vectors(case):
    m, n = case["size1"], case["size2"]
    proof = [bytes.fromhex(x) for x in case["proof"]]
    r1, r2 = ROOTS[m - 1], ROOTS[n - 1]
    assert merkle.consistency_proof(LEAF_HASHES[:n], m) == proof
    assert merkle.verify_consistency(m, n, r1, r2, proof)
    if not proof:
        return
    bad = [
        (m - 1, n, r1, r2, proof), (m + 1, n, r1, r2, proof), (m ^ 2, n, r1, r2, proof),
        (m, n * 2, r1, r2, proof), (m, n // 2, r1, r2, proof), (m, n, b"WrongRoot", r2, proof),
        (m, n, r1, b"WrongRoot", proof), (m, n, r2, r1, proof), (m, n, r1, r2, []),
        (m, n, r1, r2, proof + [b""]), (m, n, r1, r2, proof + [r1]), (m, n, r1, r2, proof + [r2]),
        (m, n, r1, r2, [b""] + proof), (m, n, r1, r2, [r1] + proof), (m, n, r1, r2, [r2] + proof),
        (m, n, r1, r2, [proof[0]] + proof), (m, n, r1, r2, proof[:-1]),
    ]
    bad += [(m, n, r1, r2, _flip(proof, i, 16)) for i in range(len(proof))]
    for s1, s2, a, b, p in bad:
        assert not merkle.verify_consistency(s1, s2, a, b, p), (s1, s2)


def test_always_consistent_sizes_and_time_travel():
    r1, r2 = merkle.EMPTY_ROOT, ROOTS[0]
    assert merkle.verify_consistency(0, 0, r1, r1, [])
    assert merkle.verify_consistency(0, 1, r1, r2, [])
    assert merkle.verify_consistency(1, 1, r2, r2, [])
    assert not merkle.verify_consistency(1, 1, r1, r2, [])      # same size, other root
    assert not merkle.verify_consistency(1, 0, r2, r1, [])      # time travel to the past
    assert not merkle.verify_consistency(2, 1, ROOTS[1], r2, [])
    assert not merkle.verify_consistency(1, 2, r2, ROOTS[1], [])  # empty proof for a real step
    assert not merkle.verify_consistency(1, 1, r2, r2, [merkle.EMPTY_ROOT])  # roots match, proof not empty
