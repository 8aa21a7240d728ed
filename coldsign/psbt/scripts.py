"""Output script shapes, dust limits and size estimates (pure)."""

from __future__ import annotations

P2WPKH, P2SH_P2WPKH, P2WSH, P2TR, P2PKH, P2SH, OP_RETURN, UNKNOWN = (
    "p2wpkh", "p2sh-p2wpkh", "p2wsh", "p2tr", "p2pkh", "p2sh", "op_return", "unknown")


def classify(script: bytes) -> str:
    n = len(script)
    if n == 22 and script[:2] == b"\x00\x14":
        return P2WPKH
    if n == 34 and script[:2] == b"\x00\x20":
        return P2WSH
    if n == 34 and script[:2] == b"\x51\x20":
        return P2TR
    if n == 25 and script[:3] == b"\x76\xa9\x14" and script[23:] == b"\x88\xac":
        return P2PKH
    if n == 23 and script[:2] == b"\xa9\x14" and script[22] == 0x87:
        return P2SH
    if n >= 1 and script[0] == 0x6A:
        return OP_RETURN
    return UNKNOWN


# Bitcoin Core's dust thresholds at its default dust relay fee (3 sat/vB): the amount below
# which spending the output would cost more than it is worth.
_DUST = {P2PKH: 546, P2SH: 540, P2WPKH: 294, P2WSH: 330, P2TR: 330}


def dust_limit(script: bytes) -> int:
    kind = classify(script)
    if kind == OP_RETURN:
        return 0
    if kind in _DUST:
        return _DUST[kind]
    # Core's rule for other scripts: (output size + 148-byte spend) * 3 sat/vB.
    return (8 + compact_size_len(len(script)) + len(script) + 148) * 3


def compact_size_len(n: int) -> int:
    return 1 if n < 0xFD else 3 if n <= 0xFFFF else 5 if n <= 0xFFFFFFFF else 9


# Weight units of one input once signed, by how it is spent. Non-witness part: 36-byte outpoint,
# scriptSig length and scriptSig, 4-byte sequence, times 4; the witness counts once. ECDSA
# signatures are counted at their 72-byte maximum (with the sighash byte), as Bitcoin Core does.
def input_weight(kind: str, *, threshold: int = 1, keys: int = 1, witness_script_len: int = 0) -> int:
    if kind == P2WPKH:
        return 41 * 4 + 1 + 73 + 34
    if kind == P2SH_P2WPKH:
        return (41 + 23) * 4 + 1 + 73 + 34
    if kind == P2WSH:
        items = 2 + threshold
        return 41 * 4 + compact_size_len(items) + 1 + threshold * 73 + \
            compact_size_len(witness_script_len) + witness_script_len
    if kind == P2TR:
        return 41 * 4 + 1 + 1 + 64
    if kind == P2PKH:
        return (41 + 1 + 73 + 34) * 4
    # Unknown: count only the non-witness skeleton; the estimate is marked as such by the caller.
    return 41 * 4


def output_weight(script: bytes) -> int:
    return (8 + compact_size_len(len(script)) + len(script)) * 4


def tx_weight(input_weights: list[int], output_scripts: list[bytes], *, segwit: bool) -> int:
    base = (4 + 4 + compact_size_len(len(input_weights)) + compact_size_len(len(output_scripts))) * 4
    return base + (2 if segwit else 0) + sum(input_weights) + sum(output_weight(s) for s in output_scripts)


def vsize(weight: int) -> int:
    return (weight + 3) // 4
