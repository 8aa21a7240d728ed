"""BIP-143 signature hashes for segwit v0 inputs, with the transaction-wide parts hashed once.

embit recomputes per-input serializations through its object layer; a 2,000-input PSBT makes
that the largest cost after the curve operations. Only SIGHASH_ALL is implemented: the signer
refuses every other type before it gets here. Taproot digests come from embit (cached there).
"""

from __future__ import annotations

from hashlib import sha256

SIGHASH_ALL = 0x01


def _sha256d(data: bytes) -> bytes:
    return sha256(sha256(data).digest()).digest()


def _compact_size(n: int) -> bytes:
    if n < 0xFD:
        return bytes([n])
    if n <= 0xFFFF:
        return b"\xfd" + n.to_bytes(2, "little")
    return b"\xfe" + n.to_bytes(4, "little")


class SegwitV0Sighash:
    """BIP-143 digests of one transaction (an embit Transaction, read only)."""

    def __init__(self, tx) -> None:
        self._outpoints = [txin.txid[::-1] + txin.vout.to_bytes(4, "little") for txin in tx.vin]
        self._sequences = [txin.sequence.to_bytes(4, "little") for txin in tx.vin]
        self._head = tx.version.to_bytes(4, "little") + _sha256d(b"".join(self._outpoints)) + \
            _sha256d(b"".join(self._sequences))
        outputs = b"".join(out.value.to_bytes(8, "little") + _compact_size(len(out.script_pubkey.data)) +
                           out.script_pubkey.data for out in tx.vout)
        self._tail_prefix = _sha256d(outputs) + tx.locktime.to_bytes(4, "little")

    def digest(self, index: int, script_code: bytes, amount: int, sighash: int = SIGHASH_ALL) -> bytes:
        if sighash != SIGHASH_ALL:
            raise ValueError("only SIGHASH_ALL digests are computed")
        return _sha256d(self._head + self._outpoints[index] + _compact_size(len(script_code)) + script_code +
                        amount.to_bytes(8, "little") + self._sequences[index] + self._tail_prefix +
                        sighash.to_bytes(4, "little"))
