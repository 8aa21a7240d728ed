"""BIP-174 finalizer and extractor for the script types coldsign signs (pure).

`finalize()` turns partial signatures into final scriptSigs and witnesses and returns the
network transaction with the coins it spends, ready for the consensus check.
"""

from __future__ import annotations

from dataclasses import dataclass
from hashlib import sha256

from coldsign.errors import BadInput, PSBTDecodeError
from coldsign.psbt import scripts as S

OP_CHECKMULTISIG = 0xAE


class NotReady(BadInput):
    code = "not-ready"


@dataclass
class Finalized:
    tx: bytes                          # serialized network transaction (with witnesses)
    txid: str
    spent: list[tuple[int, bytes]]     # (amount_sat, script_pubkey) of each input's coin


def spent_output(view, index: int) -> tuple[int, bytes]:
    """The coin an input spends, from its previous transaction (txid checked) or witness UTXO."""
    txid, vout = view.prevout
    previous = view.non_witness_utxo
    if previous is not None:
        if previous.txid().hex() != txid or vout >= len(previous.vout):
            raise PSBTDecodeError(f"input {index}: the previous transaction does not match the spent "
                                  f"coin {txid}:{vout}")
        out = previous.vout[vout]
        return out.value, out.script_pubkey.data
    if view.witness_utxo is not None:
        return tuple(view.witness_utxo)
    raise PSBTDecodeError(f"input {index}: the coin it spends is unknown (no UTXO field)")


def parse_multisig(script: bytes) -> tuple[int, list[bytes]] | None:
    """(m, pubkeys) of a bare `OP_m <pk>... OP_n OP_CHECKMULTISIG` script, else None."""
    if len(script) < 3 or script[-1] != OP_CHECKMULTISIG or not 0x51 <= script[0] <= 0x60:
        return None
    m, n = script[0] - 0x50, script[-2] - 0x50
    keys, pos = [], 1
    while pos < len(script) - 2:
        if script[pos] != 33 or pos + 34 > len(script) - 2:
            return None
        keys.append(script[pos + 1:pos + 34])
        pos += 34
    return (m, keys) if len(keys) == n and 1 <= m <= n else None


def final_fields(view, index: int, script: bytes) -> tuple[bytes | None, list[bytes] | None]:
    """(final scriptSig, final witness) for one input; NotReady says what is missing."""
    if view.final_script_sig is not None or view.final_script_witness is not None:
        return view.final_script_sig, view.final_script_witness
    kind = S.classify(script)
    script_sig = None
    if kind == S.P2SH:
        redeem = view.redeem_script
        if redeem is None or S.classify(redeem) not in (S.P2WPKH, S.P2WSH):
            raise NotReady(f"input {index}: P2SH input without a segwit redeem script; cannot finalize")
        script_sig = bytes([len(redeem)]) + redeem
        script, kind = redeem, S.classify(redeem)
    if kind == S.P2WPKH:
        for pubkey, sig in view.partial_sigs.items():
            if _hash160(pubkey) == script[2:]:
                return script_sig, [sig, pubkey]
        raise NotReady(f"input {index}: no signature from the key of this P2WPKH coin yet")
    if kind == S.P2WSH:
        ws = view.witness_script
        if ws is None or sha256(ws).digest() != script[2:]:
            raise NotReady(f"input {index}: the witness script is missing or does not hash to the coin's script")
        multisig = parse_multisig(ws)
        if multisig is None:
            raise NotReady(f"input {index}: only multisig witness scripts are finalized by coldsign")
        m, keys = multisig
        sigs = [view.partial_sigs[k] for k in keys if k in view.partial_sigs][:m]
        if len(sigs) < m:
            raise NotReady(f"input {index}: {len(sigs)} of {m} required signatures so far")
        return script_sig, [b""] + sigs + [ws]
    if kind == S.P2TR:
        if view.tap_key_sig is None:
            raise NotReady(f"input {index}: no taproot key-path signature yet")
        return None, [view.tap_key_sig]
    raise NotReady(f"input {index}: cannot finalize a {kind} input")


def finalize(psbt) -> Finalized:
    """Finalize every input (a copy; `psbt` is left as it is) and extract the transaction."""
    from coldsign.psbt.codec import extract_transaction

    done = psbt.copy()
    spent = []
    for i in range(len(done.inputs)):
        view = done.input(i)
        amount, script = spent_output(view, i)
        spent.append((amount, script))
        script_sig, witness = final_fields(view, i, script)
        view.set_final(script_sig, witness)
    tx = extract_transaction(done)
    return Finalized(tx=tx.serialize(), txid=tx.txid().hex(), spent=spent)


def _hash160(data: bytes) -> bytes:
    from embit.hashes import hash160

    return hash160(data)
