"""Official PSBT vectors of BIP-174, BIP-370 and BIP-371 (data in tests/vectors/psbt/, see its README).

Every invalid vector must fail with PSBTDecodeError *and* the message naming its fault (so a parser
failing for another reason does not pass); every valid vector must parse and re-serialize to the
same bytes, through each accepted encoding; typed fields are spot-checked against values read off
the BIP text; the BIP-174 combiner, finalizer and extractor vectors are reproduced byte for byte.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from coldsign.errors import BadInput, PSBTDecodeError
from coldsign.psbt.codec import Psbt, combine, decode_psbt, extract_transaction

HERE = Path(__file__).parent / "psbt"
BIPS = {name: json.loads((HERE / f"{name}.json").read_text()) for name in ("bip174", "bip370", "bip371")}


def _cases(kind: str):
    return [pytest.param(v, id=f"{bip}-{i}-{v['description'][:40]}")
            for bip, doc in BIPS.items() for i, v in enumerate(doc.get(kind, []))]


def _raw(b64: str) -> bytes:
    return base64.b64decode(b64)


def _by_description(bip: str, start: str) -> Psbt:
    (v,) = [v for v in BIPS[bip]["valid"] if v["description"].startswith(start)]
    return Psbt.parse(_raw(v["base64"]))


@pytest.mark.parametrize("vector", _cases("invalid"))
def test_invalid_vector_is_refused_naming_its_fault(vector):
    with pytest.raises(PSBTDecodeError) as binary:
        Psbt.parse(_raw(vector["base64"]))
    assert vector["coldsign_error"] in str(binary.value)
    for text in (vector["base64"], _raw(vector["base64"]).hex()):
        with pytest.raises(PSBTDecodeError) as decoded:
            decode_psbt(text.encode())
        assert vector["coldsign_error"] in str(decoded.value)


@pytest.mark.parametrize("vector", _cases("valid"))
def test_valid_vector_round_trips_byte_for_byte(vector):
    raw = _raw(vector["base64"])
    psbt = Psbt.parse(raw)
    assert psbt.serialize() == raw
    assert psbt.to_base64() == vector["base64"]
    for encoded in (raw, vector["base64"].encode(), raw.hex().encode(),
                    b"\n  " + vector["base64"].encode() + b"\r\n"):
        assert decode_psbt(encoded) == psbt
    if "locktime_error" not in vector:
        assert len(psbt.unsigned_tx().vin) == len(psbt.inputs)


@pytest.mark.parametrize("vector", [v for v in _cases("valid")
                                    if "expected_locktime" in v.values[0] or "locktime_error" in v.values[0]])
def test_bip370_locktime_determination(vector):
    psbt = Psbt.parse(_raw(vector["base64"]))
    assert psbt.version == 2
    if "locktime_error" in vector:
        with pytest.raises(PSBTDecodeError, match=vector["locktime_error"]):
            psbt.locktime
    else:
        assert psbt.locktime == vector["expected_locktime"]
        assert psbt.unsigned_tx().locktime == vector["expected_locktime"]


def test_bip370_fields_come_back_typed():
    psbt = _by_description("bip370", "1 input, 2 output PSBTv2, required fields only")
    assert (psbt.version, psbt.tx_version) == (2, 2)
    assert psbt.input(0).prevout == ("c85f81844094f9f0eec1e41f8d63e0a99e9f73dc725d7319871c9c4121d90a0b", 0)
    assert psbt.input(0).sequence == 0xFFFFFFFF
    assert [(psbt.output(i).amount, psbt.output(i).script.hex()) for i in range(2)] == [
        (800_000_000, "0014c430f64c4756da310dbd1a085572ef299926272c"),
        (199_998_859, "00144dd193ac964a56ac1b9e1cca8454fe2f474f8513")]
    with_seq = _by_description("bip370", "1 input, 2 output updated PSBTv2, with PSBT_IN_SEQUENCE.")
    assert with_seq.input(0).sequence == 0xFFFFFFFE
    # the unsigned tx is built from the fields; its txid changes with the sequence, the BIP-370
    # unique id (sequences zeroed) does not
    assert with_seq.txid() != psbt.txid()
    assert with_seq.unique_id() == psbt.unique_id()


def test_bip174_fields_come_back_typed():
    p2sh_p2wsh = _by_description("bip174", "PSBT with one P2SH-P2WSH input of a 2-of-2")
    view = p2sh_p2wsh.input(0)
    key = bytes.fromhex("03b1341ccba7683b6af4f1238cd6e97e7167d569fac47f1e48d47541844355bd46")
    assert list(view.partial_sigs) == [key]
    assert view.partial_sigs[key][-1] == 0x01  # SIGHASH_ALL byte after the DER signature
    assert view.witness_utxo == (199_909_013, bytes.fromhex("a9146345200f68d189e1adc0df1c4d16ea8f14c0dbeb87"))
    assert view.redeem_script.hex() == "0020771fd18ad459666dd49f3d564e3dbc42f4c84774e360ada16816a8ed488d5681"
    assert view.bip32_derivations[key] == (bytes.fromhex("b4a6ba67"), (0x80000000, 0x80000000, 0x80000004))
    assert view.sighash_type is None and view.final_script_sig is None

    sighash = _by_description("bip174", "PSBT with one P2PKH input which has a non-final scriptSig")
    assert sighash.input(0).sighash_type == 1
    assert sighash.input(0).non_witness_utxo.txid().hex() == sighash.input(0).prevout[0]

    finalized = _by_description("bip174", "PSBT with one P2PKH input and one P2SH-P2WPKH input. First")
    assert finalized.input(0).is_final and not finalized.input(1).is_final
    assert finalized.input(1).redeem_script.hex() == "001485d13537f2e265405a34dbafa9e3dda01fb82308"

    empty = _by_description("bip174", "PSBT with global unsigned tx that has 0 inputs and 0 outputs")
    assert (len(empty.inputs), len(empty.outputs), empty.tx_version, empty.locktime) == (0, 0, 0, 0)


def test_bip371_taproot_fields_come_back_typed():
    internal = bytes.fromhex("fe349064c98d6e2a853fa3c9b12bd8b304a19c195c60efa7ee2393046d3fa232")
    signed = _by_description("bip371", "PSBT with one P2TR key only input with internal key, its derivation path, and signature")
    view = signed.input(0)
    assert view.tap_key_sig.hex().startswith("bb53ec917bad9d90") and len(view.tap_key_sig) == 64
    assert view.tap_internal_key == internal
    assert view.tap_bip32_derivations == {
        internal: ([], bytes.fromhex("772b2da7"), (0x80000056, 0x80000001, 0x80000000, 1, 0))}
    assert view.witness_utxo[0] == 5_000_000_000

    script_path = _by_description("bip371", "PSBT with one P2TR script path only input with dummy internal key, scripts, derivation")
    sp = script_path.input(0)
    assert sp.tap_merkle_root.hex() == "f0362e2f75a6f420a5bde3eb221d96ae6720cf25f81890c95b1d775acb515e65"
    assert len(sp.tap_leaf_scripts) == 3
    assert {version for _, version in sp.tap_leaf_scripts.values()} == {0xC0}
    hashes = {k: v[0] for k, v in sp.tap_bip32_derivations.items()}
    assert all(len(h) == 1 for k, h in hashes.items() if k != sp.tap_internal_key)

    sigs = _by_description("bip371", "PSBT with one P2TR script path only input with dummy internal key, scripts, script key")
    assert len(sigs.input(0).tap_script_sigs) == 3

    tree = _by_description("bip371", "PSBT with one P2TR script path only output")
    out = tree.output(0)
    assert [(d, v) for d, v, _ in out.tap_tree] == [(2, 0xC0), (2, 0xC0), (1, 0xC0)]
    assert out.tap_internal_key.hex() == "50929b74c1a04954b78b4b6035e97a5e078a5a0f28ec96d547bfee9ace803ac0"
    assert len(out.tap_bip32_derivations) == 4  # three leaf keys and the internal key (no leaf hashes)
    assert out.tap_bip32_derivations[out.tap_internal_key][0] == []


@pytest.mark.parametrize("case", BIPS["bip174"]["combiner"], ids=lambda c: c["description"][:40])
def test_bip174_combiner(case):
    psbts = [Psbt.parse(_raw(b)) for b in case["inputs"]]
    assert combine(psbts).to_base64() == case["expected"]
    # combining is idempotent and leaves its inputs untouched
    assert combine([combine(psbts), *psbts]).to_base64() == case["expected"]
    assert [p.to_base64() for p in psbts] == case["inputs"]


def test_combiner_refuses_different_transactions():
    a = Psbt.parse(_raw(BIPS["bip174"]["combiner"][0]["inputs"][0]))
    b = _by_description("bip174", "PSBT with one P2PKH input. Outputs are empty")
    with pytest.raises(BadInput, match="different transactions"):
        combine([a, b])


def test_bip174_finalizer_and_extractor():
    combined = Psbt.parse(_raw(BIPS["bip174"]["combiner"][0]["expected"]))
    expected = Psbt.parse(_raw(BIPS["bip174"]["finalizer"]["expected"]))
    with pytest.raises(BadInput, match="input 0 is not finalized"):
        extract_transaction(combined)
    for i in range(2):
        final = expected.input(i)
        combined.input(i).set_final(final.final_script_sig, final.final_script_witness)
    assert combined.serialize() == expected.serialize()
    tx = extract_transaction(combined)
    assert tx.serialize().hex() == BIPS["bip174"]["extractor"]["tx_hex"]
    # the scriptSigs filled in (P2SH inputs) change the txid; the spent outpoints stay
    assert [(i.txid.hex(), i.vout) for i in tx.vin] == [combined.input(i).prevout for i in range(2)]
