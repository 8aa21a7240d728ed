"""BIP-174 creator and updater for a registered wallet (pure).

Builds an unsigned PSBT v0 spending the wallet's coins: every input carries its previous
transaction, witness UTXO and the wallet's derivations and scripts; the change output carries
the derivations that let a signer prove it is change. Used by the rehearsal, the tests and the
benchmarks today, and by the watch half's `watch send`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from coldsign.errors import BadInput
from coldsign.psbt import fields as C
from coldsign.psbt import scripts as S
from coldsign.psbt.fields import compact_size

PSBT_MAGIC = b"psbt\xff"


@dataclass(frozen=True)
class Coin:
    txid: str               # display hex
    vout: int
    amount_sat: int
    script_pubkey: bytes
    change: int             # wallet branch (0 receive, 1 change)
    index: int
    previous_tx: bytes | None = None   # the whole previous transaction (needed for segwit v0)


def _origin_value(fingerprint: bytes, path: tuple[int, ...]) -> bytes:
    return fingerprint + b"".join(step.to_bytes(4, "little") for step in path)


def _add_wallet_fields(scope, wallet, change: int, index: int, *, is_input: bool) -> None:
    """Scripts and derivations of the wallet's address at change/index, for an input or output map."""

    redeem, witness = wallet.redeem_script(change, index), wallet.witness_script(change, index)
    if redeem is not None:
        scope.set(C.PSBT_IN_REDEEM_SCRIPT if is_input else C.PSBT_OUT_REDEEM_SCRIPT, b"", redeem)
    if witness is not None:
        scope.set(C.PSBT_IN_WITNESS_SCRIPT if is_input else C.PSBT_OUT_WITNESS_SCRIPT, b"", witness)
    if wallet.kind == "tr":
        key = wallet.keys[0]
        internal = wallet.tap_internal_key(change, index)
        scope.set(C.PSBT_IN_TAP_INTERNAL_KEY if is_input else C.PSBT_OUT_TAP_INTERNAL_KEY, b"", internal)
        value = compact_size(0) + _origin_value(key.origin.fingerprint, key.origin.path + (change, index))
        scope.set(C.PSBT_IN_TAP_BIP32_DERIVATION if is_input else C.PSBT_OUT_TAP_BIP32_DERIVATION, internal, value)
        return
    for key in wallet.keys:
        scope.set(C.PSBT_IN_BIP32_DERIVATION if is_input else C.PSBT_OUT_BIP32_DERIVATION,
                  key.pubkey_at(change, index), _origin_value(key.origin.fingerprint, key.origin.path + (change, index)))


def estimate_vsize(wallet, inputs: int, output_scripts: list[bytes]) -> int:
    kind = {"wpkh": S.P2WPKH, "sh-wpkh": S.P2SH_P2WPKH, "tr": S.P2TR}.get(wallet.kind, S.P2WSH)
    ws = wallet.witness_script(0, 0) if kind == S.P2WSH else b""
    weight = S.input_weight(kind, threshold=wallet.threshold or 1, witness_script_len=len(ws or b""))
    return S.vsize(S.tx_weight([weight] * inputs, output_scripts, segwit=True))


def create_psbt(wallet, coins: list[Coin], payments: list[tuple[bytes, int]], *, fee_rate: float,
                change_index: int | None = None, locktime: int = 0):
    """An unsigned PSBT paying `payments` [(script_pubkey, sat)] from `coins`; the rest, less the
    fee at `fee_rate` sat/vB, to the wallet's change address `change_index` (no change output
    when that would be dust)."""
    if not coins:
        raise BadInput("no coins to spend")
    total_in = sum(c.amount_sat for c in coins)
    change_script = wallet.script_pubkey(1, change_index) if change_index is not None else None
    fee = math.ceil(fee_rate * estimate_vsize(wallet, len(coins), [s for s, _ in payments] +
                                              ([change_script] if change_script else [])))
    change = total_in - sum(a for _, a in payments) - fee
    if change < 0:
        raise BadInput(f"the coins hold {total_in} sat, not enough for the payments and a {fee} sat fee")
    with_change = change_script is not None and change >= S.dust_limit(change_script)
    return assemble_psbt(wallet, coins, payments, (change_index, change) if with_change else None,
                         locktime=locktime)


def assemble_psbt(wallet, coins: list[Coin], payments: list[tuple[bytes, int]],
                  change: tuple[int, int] | None, *, locktime: int = 0):
    """The unsigned PSBT v0 with exactly these amounts: inputs `coins` (RBF-signalling sequence),
    outputs `payments` then, when `change` = (index, sat), the wallet's change output with its
    derivations. Multisig wallets carry every cosigner's account xpub as a global xpub."""
    from embit.script import Script
    from embit.transaction import Transaction, TransactionInput, TransactionOutput

    from coldsign.psbt.codec import Psbt

    if not coins:
        raise BadInput("no coins to spend")
    outputs = list(payments)
    if change is not None:
        outputs.append((wallet.script_pubkey(1, change[0]), change[1]))
    tx = Transaction(version=2, locktime=locktime,
                     vin=[TransactionInput(bytes.fromhex(c.txid), c.vout, sequence=0xFFFFFFFD) for c in coins],
                     vout=[TransactionOutput(amount, Script(script)) for script, amount in outputs])
    raw = tx.serialize()
    blob = PSBT_MAGIC + compact_size(1) + bytes([C.PSBT_GLOBAL_UNSIGNED_TX]) + compact_size(len(raw)) + raw + b"\x00"
    blob += b"\x00" * (len(coins) + len(outputs))
    psbt = Psbt.parse(blob)
    if len(wallet.keys) > 1:
        for key in wallet.keys:
            psbt.globals.set(C.PSBT_GLOBAL_XPUB, key.xpub.serialize(),
                             _origin_value(key.origin.fingerprint, key.origin.path))
    for n, coin in enumerate(coins):
        scope = psbt.inputs[n]
        if coin.previous_tx is not None:
            scope.set(C.PSBT_IN_NON_WITNESS_UTXO, b"", coin.previous_tx)
        scope.set(C.PSBT_IN_WITNESS_UTXO, b"", coin.amount_sat.to_bytes(8, "little") +
                  compact_size(len(coin.script_pubkey)) + coin.script_pubkey)
        _add_wallet_fields(scope, wallet, coin.change, coin.index, is_input=True)
    if change is not None:
        _add_wallet_fields(psbt.outputs[len(outputs) - 1], wallet, 1, change[0], is_input=False)
    return psbt
