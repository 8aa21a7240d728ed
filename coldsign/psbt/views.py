"""Typed access to one PSBT input or output map: `InputView` and `OutputView`.

A view reads a `PsbtMap` (see `codec.py`) through the field checks of `fields.py`, so every value
comes back typed and every problem is a `PSBTDecodeError` saying where ("input 2: ..."). In a v0
PSBT the prevout, sequence, amount and script come from the global unsigned transaction `tx`; in
v2 from the BIP-370 per-map fields. The low-level helpers `_fail`, `_typed` and `_parse_tx` live
here because both the views and the codec use them (the codec imports this module, never the
reverse at run time).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from embit.hashes import double_sha256

from coldsign.errors import BadInput, PSBTDecodeError
from coldsign.limits import LIMITS
from coldsign.psbt import fields as F
from coldsign.psbt.fields import FieldProblem

if TYPE_CHECKING:
    from coldsign.psbt.codec import PsbtMap

SEQUENCE_FINAL = 0xFFFFFFFF


def _fail(where: str, text: str) -> PSBTDecodeError:
    return PSBTDecodeError(f"{where}: {text}")


def _typed(where: str, fields: dict, keytype: int, fn, *args):
    """Run a field check/reader, turning a FieldProblem into 'where: NAME text'."""
    try:
        return fn(*args)
    except FieldProblem as e:
        raise _fail(where, f"{F.field_name(fields, keytype)} {e}") from None


def _parse_tx(where: str, fields: dict, keytype: int, value: bytes, allow_witness: bool):
    if len(value) > LIMITS.transaction_max_bytes:
        raise _fail(where, f"{F.field_name(fields, keytype)} is larger than "
                           f"{LIMITS.transaction_max_bytes} bytes")
    max_count = max(LIMITS.psbt_max_inputs, LIMITS.psbt_max_outputs, 100_000)
    return _typed(where, fields, keytype,
                  lambda v: F.parse_transaction(v, allow_witness=allow_witness, max_count=max_count),
                  value)


class InputView:
    """Typed, validated access to one input map. `tx` is the v0 unsigned transaction (None in v2)."""

    def __init__(self, m: PsbtMap, index: int, tx=None):
        self.map, self.index, self.tx = m, index, tx
        self.where = f"input {index}"

    def _value(self, keytype: int, fn, keydata: bytes = b""):
        value = self.map.get(keytype, keydata)
        return None if value is None else _typed(self.where, F.INPUT_FIELDS, keytype, fn, value)

    @property
    def prevout(self) -> tuple[str, int]:
        if self.tx is not None:
            txin = self.tx.vin[self.index]
            return txin.txid.hex(), txin.vout
        txid = self.map.get(F.PSBT_IN_PREVIOUS_TXID)
        index = self._value(F.PSBT_IN_OUTPUT_INDEX, F.u32)
        if txid is None or index is None:
            raise _fail(self.where, "PSBT_IN_PREVIOUS_TXID and PSBT_IN_OUTPUT_INDEX are required")
        return bytes(reversed(txid)).hex(), index

    @property
    def sequence(self) -> int:
        if self.tx is not None:
            return self.tx.vin[self.index].sequence
        seq = self._value(F.PSBT_IN_SEQUENCE, F.u32)
        return SEQUENCE_FINAL if seq is None else seq

    @property
    def non_witness_utxo(self):
        value = self.map.get(F.PSBT_IN_NON_WITNESS_UTXO)
        if value is None:
            return None
        return self.map.parsed(F.PSBT_IN_NON_WITNESS_UTXO, value, lambda v: _parse_tx(
            self.where, F.INPUT_FIELDS, F.PSBT_IN_NON_WITNESS_UTXO, v, True))

    @property
    def non_witness_utxo_txid(self) -> str | None:
        """The previous transaction's txid (display hex), hashed from the bytes as given."""
        value = self.map.get(F.PSBT_IN_NON_WITNESS_UTXO)
        if value is None:
            return None
        if value[4:6] == b"\x00\x01":  # witness serialization: the txid excludes the witnesses
            return self.non_witness_utxo.txid().hex()
        return double_sha256(value)[::-1].hex()

    @property
    def witness_utxo(self) -> tuple[int, bytes] | None:
        return self._value(F.PSBT_IN_WITNESS_UTXO, F.witness_utxo)

    @property
    def partial_sigs(self) -> dict[bytes, bytes]:
        return dict(self.map.items(F.PSBT_IN_PARTIAL_SIG))

    @property
    def sighash_type(self) -> int | None:
        return self._value(F.PSBT_IN_SIGHASH_TYPE, F.u32)

    @property
    def redeem_script(self) -> bytes | None:
        return self.map.get(F.PSBT_IN_REDEEM_SCRIPT)

    @property
    def witness_script(self) -> bytes | None:
        return self.map.get(F.PSBT_IN_WITNESS_SCRIPT)

    @property
    def bip32_derivations(self) -> dict[bytes, tuple[bytes, tuple[int, ...]]]:
        return {k: F.key_path(v) for k, v in self.map.items(F.PSBT_IN_BIP32_DERIVATION)}

    @property
    def tap_key_sig(self) -> bytes | None:
        return self.map.get(F.PSBT_IN_TAP_KEY_SIG)

    @property
    def tap_script_sigs(self) -> dict[tuple[bytes, bytes], bytes]:
        """(x-only key, leaf hash) -> signature."""
        return {(k[:32], k[32:]): v for k, v in self.map.items(F.PSBT_IN_TAP_SCRIPT_SIG)}

    @property
    def tap_leaf_scripts(self) -> dict[bytes, tuple[bytes, int]]:
        """control block -> (script, leaf version)."""
        return {k: (v[:-1], v[-1]) for k, v in self.map.items(F.PSBT_IN_TAP_LEAF_SCRIPT)}

    @property
    def tap_internal_key(self) -> bytes | None:
        return self.map.get(F.PSBT_IN_TAP_INTERNAL_KEY)

    @property
    def tap_merkle_root(self) -> bytes | None:
        return self.map.get(F.PSBT_IN_TAP_MERKLE_ROOT)

    @property
    def tap_bip32_derivations(self) -> dict[bytes, tuple[list[bytes], bytes, tuple[int, ...]]]:
        return {k: F.tap_key_path(v) for k, v in self.map.items(F.PSBT_IN_TAP_BIP32_DERIVATION)}

    @property
    def required_time_locktime(self) -> int | None:
        return self._value(F.PSBT_IN_REQUIRED_TIME_LOCKTIME, F.u32)

    @property
    def required_height_locktime(self) -> int | None:
        return self._value(F.PSBT_IN_REQUIRED_HEIGHT_LOCKTIME, F.u32)

    @property
    def final_script_sig(self) -> bytes | None:
        return self.map.get(F.PSBT_IN_FINAL_SCRIPTSIG)

    @property
    def final_script_witness(self) -> list[bytes] | None:
        return self._value(F.PSBT_IN_FINAL_SCRIPTWITNESS, F.final_witness)

    @property
    def is_final(self) -> bool:
        return (self.map.get(F.PSBT_IN_FINAL_SCRIPTSIG) is not None
                or self.map.get(F.PSBT_IN_FINAL_SCRIPTWITNESS) is not None)

    def add_partial_sig(self, pubkey: bytes, sig: bytes) -> None:
        _typed(self.where, F.INPUT_FIELDS, F.PSBT_IN_PARTIAL_SIG, F.check_pubkey, pubkey)
        _typed(self.where, F.INPUT_FIELDS, F.PSBT_IN_PARTIAL_SIG, F.ecdsa_signature, sig)
        self.map.set(F.PSBT_IN_PARTIAL_SIG, pubkey, sig)

    def set_tap_key_sig(self, sig: bytes) -> None:
        _typed(self.where, F.INPUT_FIELDS, F.PSBT_IN_TAP_KEY_SIG, F.schnorr_signature, sig)
        self.map.set(F.PSBT_IN_TAP_KEY_SIG, b"", sig)

    def set_final(self, script_sig: bytes | None, witness: list[bytes] | None) -> None:
        """BIP-174 input finalizer: set the final scriptSig/witness (left unset when empty) and clear
        every signing field; the UTXOs, BIP-370 fields and unknown entries are kept."""
        if not script_sig and not witness:
            raise BadInput(f"{self.where}: cannot finalize with an empty scriptSig and witness")
        for keytype in F.FINALIZER_CLEARS:
            self.map.remove(keytype)
        if script_sig:
            self.map.set(F.PSBT_IN_FINAL_SCRIPTSIG, b"", bytes(script_sig))
        if witness:
            self.map.set(F.PSBT_IN_FINAL_SCRIPTWITNESS, b"", F.serialize_witness(list(witness)))


class OutputView:
    """Typed access to one output map. `tx` is the v0 unsigned transaction (None in v2)."""

    def __init__(self, m: PsbtMap, index: int, tx=None):
        self.map, self.index, self.tx = m, index, tx
        self.where = f"output {index}"

    @property
    def amount(self) -> int:
        if self.tx is not None:
            return self.tx.vout[self.index].value
        value = self.map.get(F.PSBT_OUT_AMOUNT)
        if value is None:
            raise _fail(self.where, "PSBT_OUT_AMOUNT is missing")
        return _typed(self.where, F.OUTPUT_FIELDS, F.PSBT_OUT_AMOUNT, F.amount, value)

    @property
    def script(self) -> bytes:
        if self.tx is not None:
            return self.tx.vout[self.index].script_pubkey.data
        value = self.map.get(F.PSBT_OUT_SCRIPT)
        if value is None:
            raise _fail(self.where, "PSBT_OUT_SCRIPT is missing")
        return value

    @property
    def redeem_script(self) -> bytes | None:
        return self.map.get(F.PSBT_OUT_REDEEM_SCRIPT)

    @property
    def witness_script(self) -> bytes | None:
        return self.map.get(F.PSBT_OUT_WITNESS_SCRIPT)

    @property
    def bip32_derivations(self) -> dict[bytes, tuple[bytes, tuple[int, ...]]]:
        return {k: F.key_path(v) for k, v in self.map.items(F.PSBT_OUT_BIP32_DERIVATION)}

    @property
    def tap_internal_key(self) -> bytes | None:
        return self.map.get(F.PSBT_OUT_TAP_INTERNAL_KEY)

    @property
    def tap_tree(self) -> list[tuple[int, int, bytes]] | None:
        value = self.map.get(F.PSBT_OUT_TAP_TREE)
        return None if value is None else F.tap_tree(value)

    @property
    def tap_bip32_derivations(self) -> dict[bytes, tuple[list[bytes], bytes, tuple[int, ...]]]:
        return {k: F.tap_key_path(v) for k, v in self.map.items(F.PSBT_OUT_TAP_BIP32_DERIVATION)}
