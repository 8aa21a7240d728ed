"""BIP-143 signature hashes for segwit v0 inputs, with the transaction-wide parts hashed once.

embit recomputes per-input serializations through its object layer; a 2,000-input PSBT makes
that the largest cost after the curve operations. Only SIGHASH_ALL is implemented: the signer
refuses every other type before it gets here. Taproot digests come from embit (cached there).
"""

from __future__ import annotations

from embit.hashes import double_sha256

from coldsign.psbt.fields import compact_size

SIGHASH_ALL = 0x01


class SegwitV0Sighash:
    """BIP-143 digests of one transaction (an embit Transaction, read only)."""

    def __init__(self, tx) -> None:
        self._outpoints = [txin.txid[::-1] + txin.vout.to_bytes(4, "little") for txin in tx.vin]
        self._sequences = [txin.sequence.to_bytes(4, "little") for txin in tx.vin]
        self._head = tx.version.to_bytes(4, "little") + double_sha256(b"".join(self._outpoints)) + \
            double_sha256(b"".join(self._sequences))
        outputs = b"".join(out.value.to_bytes(8, "little") + compact_size(len(out.script_pubkey.data)) +
                           out.script_pubkey.data for out in tx.vout)
        self._tail_prefix = double_sha256(outputs) + tx.locktime.to_bytes(4, "little")

    def digest(self, index: int, script_code: bytes, amount: int, sighash: int = SIGHASH_ALL) -> bytes:
        if sighash != SIGHASH_ALL:
            raise ValueError("only SIGHASH_ALL digests are computed")
        return double_sha256(self._head + self._outpoints[index] + compact_size(len(script_code)) + script_code +
                        amount.to_bytes(8, "little") + self._sequences[index] + self._tail_prefix +
                        sighash.to_bytes(4, "little"))
