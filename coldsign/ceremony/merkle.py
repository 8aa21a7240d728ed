"""The ceremony log's Merkle tree: RFC 6962 / RFC 9162 hashing, tree heads, inclusion and
consistency proofs (generate and verify).

Why a Merkle tree on top of the hash chain: a checkpoint (size + root, signed) written on the
paper ceremony record pins every entry up to that size, and a short consistency proof shows a
later log only *appended* to it (no rewrite, no fork, no rollback) without the auditor holding
the old entries. Certificate Transparency answers the same question the same way.

Hashing (RFC 9162 §2.1.1):

- leaf hash ``SHA-256(0x00 || data)`` — `data` is one log line's bytes without its newline;
- node hash ``SHA-256(0x01 || left || right)``;
- the tree of n leaves splits at k, the largest power of two below n (left k leaves, right n-k);
- the empty tree's hash is ``SHA-256("")``.

The 0x00/0x01 prefixes keep a leaf from ever passing for an inner node (second-preimage attacks).

Efficiency: `root` folds leaf hashes with a stack of perfect-subtree roots (a *compact range*,
the same idea as `MerkleAccumulator`), one SHA-256 per node: 100,000 leaves take ~0.1 s. Proofs
hash each subtree once (O(n)). Verification is the loop of RFC 9162 §2.1.3.2 and §2.1.4.2, O(log n).

Pure: no I/O. Functions take and return bytes; hashes are 32 bytes.
"""

from __future__ import annotations

import hashlib
from typing import Iterable, Sequence

HASH_BYTES = 32
LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    """RFC 9162 leaf hash: SHA-256(0x00 || data)."""
    return hashlib.sha256(LEAF_PREFIX + bytes(data)).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 interior node hash: SHA-256(0x01 || left || right)."""
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


class MerkleAccumulator:
    """A tree grown one leaf at a time, holding only its perfect-subtree roots (≤ log2 n hashes).

    `append(leaf_hash)` is amortised O(1); `root()` folds the stack right to left in O(log n).
    `edge()` is the stack itself (largest subtree first): given it, anyone can keep appending and
    compute later roots without the earlier leaves (`from_edge`)."""

    def __init__(self) -> None:
        self._stack: list[tuple[int, bytes]] = []   # (subtree size, subtree hash), sizes strictly decreasing
        self.size = 0

    @classmethod
    def from_edge(cls, size: int, edge: Sequence[bytes]) -> "MerkleAccumulator":
        """The accumulator of a `size`-leaf tree from its perfect-subtree roots (ValueError if their
        count does not match the binary form of `size`)."""
        sizes = [1 << bit for bit in range(size.bit_length() - 1, -1, -1) if size >> bit & 1]
        if len(sizes) != len(edge) or any(len(h) != HASH_BYTES for h in edge):
            raise ValueError(f"a {size}-leaf tree has {len(sizes)} edge hashes of {HASH_BYTES} bytes")
        acc = cls()
        acc._stack = list(zip(sizes, (bytes(h) for h in edge)))
        acc.size = size
        return acc

    def append(self, leaf: bytes) -> None:
        """Add one leaf *hash* (see `leaf_hash`)."""
        size, value = 1, leaf
        while self._stack and self._stack[-1][0] == size:
            left_size, left = self._stack.pop()
            value = node_hash(left, value)
            size += left_size
        self._stack.append((size, value))
        self.size += 1

    def extend(self, leaves: Iterable[bytes]) -> "MerkleAccumulator":
        for leaf in leaves:
            self.append(leaf)
        return self

    def root(self) -> bytes:
        if not self._stack:
            return EMPTY_ROOT
        value = self._stack[-1][1]
        for _size, left in reversed(self._stack[:-1]):
            value = node_hash(left, value)
        return value

    def edge(self) -> list[bytes]:
        return [value for _size, value in self._stack]


def root(leaves: Sequence[bytes]) -> bytes:
    """The tree hash of these leaf *hashes* (RFC 9162 MTH, EMPTY_ROOT for none)."""
    return MerkleAccumulator().extend(leaves).root()


def tree_hash(data: Iterable[bytes]) -> bytes:
    """The tree hash of these leaf *data* (each hashed with `leaf_hash` first)."""
    return MerkleAccumulator().extend(leaf_hash(d) for d in data).root()


def _split(n: int) -> int:
    """k: the largest power of two smaller than n (n ≥ 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def inclusion_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """RFC 9162 PATH(index, D[n]) for the tree of these leaf hashes: the sibling hashes from the
    leaf up to the root. ValueError when `index` is not a leaf of the tree."""
    if not 0 <= index < len(leaves):
        raise ValueError(f"leaf {index} is not in a tree of {len(leaves)} leaves")
    proof: list[bytes] = []
    lo, hi = 0, len(leaves)
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            proof.append(root(leaves[lo + k:hi]))
            hi = lo + k
        else:
            proof.append(root(leaves[lo:lo + k]))
            lo = lo + k
    proof.reverse()
    return proof


def consistency_proof(leaves: Sequence[bytes], old_size: int) -> list[bytes]:
    """RFC 9162 PROOF(old_size, D[n]) for the tree of these leaf hashes (n = len(leaves)): the
    hashes that show the first `old_size` leaves' tree is a prefix of this one. Empty when
    old_size is 0 or n. ValueError when old_size > n."""
    n = len(leaves)
    if not 0 <= old_size <= n:
        raise ValueError(f"a tree of {n} leaves has no prefix of {old_size} leaves")
    if old_size in (0, n):
        return []
    proof: list[bytes] = []
    lo, hi, m, whole = 0, n, old_size, True   # SUBPROOF(m, D[lo:hi], whole)
    while True:
        if m == hi - lo:
            if not whole:
                proof.append(root(leaves[lo:hi]))
            break
        k = _split(hi - lo)
        if m <= k:
            proof.append(root(leaves[lo + k:hi]))
            hi = lo + k
        else:
            proof.append(root(leaves[lo:lo + k]))
            lo, m, whole = lo + k, m - k, False
    proof.reverse()
    return proof


def _hashes_ok(*hashes: bytes) -> bool:
    return all(isinstance(h, (bytes, bytearray)) and len(h) == HASH_BYTES for h in hashes)


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes], expected_root: bytes) -> bool:
    """True when `proof` shows leaf hash `leaf` at `index` in the `size`-leaf tree with root
    `expected_root` (RFC 9162 §2.1.3.2)."""
    if not 0 <= index < size or not _hashes_ok(leaf, expected_root, *proof):
        return False
    fn, sn, value = index, size - 1, bytes(leaf)
    for sibling in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            value = node_hash(sibling, value)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            value = node_hash(value, sibling)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and value == expected_root


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes,
                       proof: Sequence[bytes]) -> bool:
    """True when `proof` shows the `old_size` tree with `old_root` is a prefix of the `new_size`
    tree with `new_root` (RFC 9162 §2.1.4.2). Equal sizes need equal roots and an empty proof;
    the empty tree is a prefix of every tree (with an empty proof)."""
    if not 0 <= old_size <= new_size or not _hashes_ok(old_root, new_root, *proof):
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    if old_size == 0:
        return not proof
    if not proof:
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:          # a power of two: the old root is the first node
        path.insert(0, bytes(old_root))
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    first = second = path[0]
    for node in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            first, second = node_hash(node, first), node_hash(node, second)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            second = node_hash(second, node)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and first == old_root and second == new_root
