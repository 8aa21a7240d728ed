"""The Merkle tree against a straightforward recursive RFC 6962 implementation written here.

The reference below is the RFC's definitions transcribed literally (MTH, PATH, PROOF/SUBPROOF by
recursion on slices), independent of the iterative code in coldsign.ceremony.merkle. Every tree
size 1..64, every leaf, every old size; then random size pairs up to 3,000 (seed printed).
"""

from __future__ import annotations

import hashlib
import random
import time

import pytest

from coldsign.ceremony import merkle


def _h(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def ref_mth(d: list[bytes]) -> bytes:
    n = len(d)
    if n == 0:
        return _h(b"")
    if n == 1:
        return _h(b"\x00" + d[0])
    k = 1
    while k * 2 < n:
        k *= 2
    return _h(b"\x01" + ref_mth(d[:k]) + ref_mth(d[k:]))


def ref_path(m: int, d: list[bytes]) -> list[bytes]:
    n = len(d)
    if n == 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return ref_path(m, d[:k]) + [ref_mth(d[k:])]
    return ref_path(m - k, d[k:]) + [ref_mth(d[:k])]


def ref_subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [ref_mth(d)]
    k = 1
    while k * 2 < n:
        k *= 2
    if m <= k:
        return ref_subproof(m, d[:k], b) + [ref_mth(d[k:])]
    return ref_subproof(m - k, d[k:], False) + [ref_mth(d[:k])]


DATA = [f"entry {i}".encode() for i in range(64)]
HASHES = [merkle.leaf_hash(x) for x in DATA]


@pytest.mark.parametrize("n", range(1, 65))
def test_every_size_every_leaf_every_prefix(n):
    root = merkle.root(HASHES[:n])
    assert root == ref_mth(DATA[:n]) == merkle.tree_hash(DATA[:n])
    for i in range(n):
        proof = merkle.inclusion_proof(HASHES[:n], i)
        assert proof == ref_path(i, DATA[:n])
        assert merkle.verify_inclusion(HASHES[i], i, n, proof, root)
        assert not merkle.verify_inclusion(merkle.leaf_hash(b"other"), i, n, proof, root)
    for m in range(0, n + 1):
        proof = merkle.consistency_proof(HASHES[:n], m)
        expected = [] if m in (0, n) else ref_subproof(m, DATA[:n], True)
        assert proof == expected
        old = merkle.root(HASHES[:m])
        assert merkle.verify_consistency(m, n, old, root, proof)
        if 0 < m < n:
            other = merkle.root(HASHES[1:m + 1])           # a different old tree of the same size
            assert not merkle.verify_consistency(m, n, other, root, proof)
            assert not merkle.verify_consistency(m, n, old, merkle.root(HASHES[1:n + 1]), proof)


def test_random_pairs():
    seed = random.randrange(2**32)
    print(f"random seed {seed}")
    rng = random.Random(seed)
    data = [rng.randbytes(rng.randrange(0, 40)) for _ in range(3000)]
    hashes = [merkle.leaf_hash(x) for x in data]
    for _ in range(25):
        n = rng.randrange(1, 3001)
        m = rng.randrange(0, n + 1)
        i = rng.randrange(0, n)
        root = merkle.root(hashes[:n])
        assert merkle.verify_inclusion(hashes[i], i, n, merkle.inclusion_proof(hashes[:n], i), root)
        proof = merkle.consistency_proof(hashes[:n], m)
        assert merkle.verify_consistency(m, n, merkle.root(hashes[:m]), root, proof)
        if 0 < m < n:
            tampered = list(hashes[:n])
            tampered[rng.randrange(0, m)] = merkle.leaf_hash(b"rewritten")
            assert not merkle.verify_consistency(m, n, merkle.root(tampered[:m]), root, proof)


def test_accumulator_edge_resumes_without_old_leaves():
    acc = merkle.MerkleAccumulator().extend(HASHES[:37])
    resumed = merkle.MerkleAccumulator.from_edge(37, acc.edge())
    assert len(acc.edge()) == bin(37).count("1")
    resumed.extend(HASHES[37:])
    assert resumed.root() == merkle.root(HASHES) and resumed.size == 64
    with pytest.raises(ValueError, match="a 37-leaf tree has 3 edge hashes of 32 bytes"):
        merkle.MerkleAccumulator.from_edge(37, acc.edge()[:2])


def test_proof_arguments_out_of_range():
    with pytest.raises(ValueError, match="leaf 5 is not in a tree of 5 leaves"):
        merkle.inclusion_proof(HASHES[:5], 5)
    with pytest.raises(ValueError, match="a tree of 5 leaves has no prefix of 6 leaves"):
        merkle.consistency_proof(HASHES[:5], 6)


def test_root_of_100k_leaves_is_fast():
    hashes = [merkle.leaf_hash(i.to_bytes(8, "big")) for i in range(100_000)]
    start = time.perf_counter()
    merkle.root(hashes)
    assert time.perf_counter() - start < 1.0
