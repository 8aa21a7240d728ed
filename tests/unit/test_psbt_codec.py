"""The PSBT codec on generated and hand-made PSBTs.

Hypothesis builds v0 and v2 PSBTs with every common field plus unknown and proprietary entries,
then checks: parse(serialize(p)) == p byte for byte; binary, base64 and hex decode to the same
PSBT; truncations always fail and byte flips either parse or fail with PSBTDecodeError (never
another exception). Hand-made cases cover the limits, the map editing API and the checks the
official vectors do not reach.
"""

from __future__ import annotations

import base64

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coldsign.errors import BadInput, PSBTDecodeError
from coldsign.limits import LIMITS
from coldsign.psbt import fields as F
from coldsign.psbt.codec import PSBT_MAGIC, Psbt, PsbtMap, combine, decode_psbt

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def der_int(n: int) -> bytes:
    b = n.to_bytes((n.bit_length() + 7) // 8 or 1, "big")
    return b"\x00" + b if b[0] & 0x80 else b


def der_sig(r: int, s: int, sighash: int = 1) -> bytes:
    body = b"\x02" + bytes([len(der_int(r))]) + der_int(r) + b"\x02" + bytes([len(der_int(s))]) + der_int(s)
    return b"\x30" + bytes([len(body)]) + body + bytes([sighash])


def tx_bytes(version: int, vin: list[tuple[bytes, int, int]], vout: list[tuple[int, bytes]], locktime: int) -> bytes:
    out = version.to_bytes(4, "little") + F.compact_size(len(vin))
    for txid, n, seq in vin:
        out += txid + n.to_bytes(4, "little") + b"\x00" + seq.to_bytes(4, "little")
    out += F.compact_size(len(vout))
    for amount, script in vout:
        out += amount.to_bytes(8, "little") + F.compact_size(len(script)) + script
    return out + locktime.to_bytes(4, "little")


u32s = st.integers(0, 2**32 - 1)
scripts = st.binary(max_size=40)
amounts = st.integers(0, F.MAX_MONEY)
pubkeys = st.builds(lambda p, b: bytes([p]) + b, st.sampled_from([2, 3]), st.binary(min_size=32, max_size=32))
sigs = st.builds(der_sig, st.integers(1, 2**256 - 1), st.integers(1, 2**256 - 1), st.sampled_from([1, 2, 3, 0x81]))
paths = st.builds(lambda fp, p: fp + b"".join(i.to_bytes(4, "little") for i in p),
                  st.binary(min_size=4, max_size=4), st.lists(u32s, max_size=5))
unknown = st.tuples(st.integers(0x40, 0xFA), st.binary(max_size=8), st.binary(max_size=30))
proprietary = st.builds(lambda ident, sub, rest, value: (0xFC, F.compact_size(len(ident)) + ident + bytes([sub]) + rest, value),
                        st.binary(max_size=6), st.integers(0, 0xFC), st.binary(max_size=6), st.binary(max_size=10))


@st.composite
def input_map(draw, version: int) -> PsbtMap:
    m = PsbtMap()
    if version == 2:
        m.set(F.PSBT_IN_PREVIOUS_TXID, b"", draw(st.binary(min_size=32, max_size=32)))
        m.set(F.PSBT_IN_OUTPUT_INDEX, b"", draw(u32s).to_bytes(4, "little"))
        if draw(st.booleans()):
            m.set(F.PSBT_IN_SEQUENCE, b"", draw(u32s).to_bytes(4, "little"))
    if draw(st.booleans()):
        script = draw(scripts)
        m.set(F.PSBT_IN_WITNESS_UTXO, b"", draw(amounts).to_bytes(8, "little") + F.compact_size(len(script)) + script)
    for key, sig in draw(st.dictionaries(pubkeys, sigs, max_size=3)).items():
        m.set(F.PSBT_IN_PARTIAL_SIG, key, sig)
    if draw(st.booleans()):
        m.set(F.PSBT_IN_SIGHASH_TYPE, b"", draw(u32s).to_bytes(4, "little"))
    if draw(st.booleans()):
        m.set(F.PSBT_IN_WITNESS_SCRIPT, b"", draw(scripts))
    for key, path in draw(st.dictionaries(pubkeys, paths, max_size=3)).items():
        m.set(F.PSBT_IN_BIP32_DERIVATION, key, path)
    if draw(st.booleans()):
        m.set(F.PSBT_IN_TAP_KEY_SIG, b"", draw(st.binary(min_size=64, max_size=64)))
    if draw(st.booleans()):
        m.set(F.PSBT_IN_TAP_INTERNAL_KEY, b"", draw(st.binary(min_size=32, max_size=32)))
    for entry in draw(st.lists(st.one_of(unknown, proprietary), max_size=3, unique_by=lambda e: e[:2])):
        m.entries.append(entry)
    return m


@st.composite
def output_map(draw, version: int) -> PsbtMap:
    m = PsbtMap()
    if version == 2:
        m.set(F.PSBT_OUT_AMOUNT, b"", draw(amounts).to_bytes(8, "little"))
        m.set(F.PSBT_OUT_SCRIPT, b"", draw(scripts))
    for key, path in draw(st.dictionaries(pubkeys, paths, max_size=2)).items():
        m.set(F.PSBT_OUT_BIP32_DERIVATION, key, path)
    if draw(st.booleans()):
        m.set(F.PSBT_OUT_TAP_INTERNAL_KEY, b"", draw(st.binary(min_size=32, max_size=32)))
    for entry in draw(st.lists(unknown, max_size=2, unique_by=lambda e: e[:2])):
        m.entries.append(entry)
    return m


@st.composite
def psbts(draw) -> Psbt:
    version = draw(st.sampled_from([0, 2]))
    n_in, n_out = draw(st.integers(0, 3)), draw(st.integers(0, 3))
    g = PsbtMap()
    if version == 0:
        vin = [(draw(st.binary(min_size=32, max_size=32)), draw(u32s), draw(u32s)) for _ in range(n_in)]
        vout = [(draw(amounts), draw(scripts)) for _ in range(n_out)]
        g.set(F.PSBT_GLOBAL_UNSIGNED_TX, b"", tx_bytes(draw(u32s), vin, vout, draw(u32s)))
    else:
        g.set(F.PSBT_GLOBAL_TX_VERSION, b"", draw(u32s).to_bytes(4, "little"))
        g.set(F.PSBT_GLOBAL_INPUT_COUNT, b"", F.compact_size(n_in))
        g.set(F.PSBT_GLOBAL_OUTPUT_COUNT, b"", F.compact_size(n_out))
        g.set(F.PSBT_GLOBAL_VERSION, b"", (2).to_bytes(4, "little"))
    for entry in draw(st.lists(proprietary, max_size=2, unique_by=lambda e: e[:2])):
        g.entries.append(entry)
    return Psbt(version, g, [draw(input_map(version)) for _ in range(n_in)],
                [draw(output_map(version)) for _ in range(n_out)])


@SETTINGS
@given(psbts())
def test_parse_serialize_round_trip(psbt):
    raw = psbt.serialize()
    parsed = Psbt.parse(raw)
    assert parsed == psbt
    assert parsed.serialize() == raw
    assert parsed.copy() == parsed


@SETTINGS
@given(psbts())
def test_every_encoding_decodes_to_the_same_psbt(psbt):
    raw = psbt.serialize()
    forms = [raw, base64.b64encode(raw), raw.hex().encode(), raw.hex().upper().encode(),
             b"  " + base64.b64encode(raw) + b"\n"]
    assert all(decode_psbt(form) == psbt for form in forms)


@SETTINGS
@given(psbts(), st.data())
def test_truncation_always_fails_with_psbt_decode_error(psbt, data):
    raw = psbt.serialize()
    cut = data.draw(st.integers(0, len(raw) - 1))
    with pytest.raises(PSBTDecodeError):
        Psbt.parse(raw[:cut])


@SETTINGS
@given(psbts(), st.data())
def test_byte_flips_parse_or_fail_with_psbt_decode_error(psbt, data):
    raw = bytearray(psbt.serialize())
    for _ in range(data.draw(st.integers(1, 3))):
        raw[data.draw(st.integers(0, len(raw) - 1))] ^= data.draw(st.integers(1, 255))
    try:
        reparsed = Psbt.parse(bytes(raw))
    except PSBTDecodeError:
        return
    assert reparsed.serialize() == bytes(raw)


# --- hand-made cases --------------------------------------------------------------------------------

def v0(inputs: list[PsbtMap] | None = None, n_in: int = 1, outputs: int = 1) -> Psbt:
    vin = [(bytes([i + 1]) * 32, i, 0xFFFFFFFD) for i in range(n_in)]
    g = PsbtMap([(F.PSBT_GLOBAL_UNSIGNED_TX, b"", tx_bytes(2, vin, [(1000, b"\x51")] * outputs, 0))])
    return Psbt(0, g, inputs if inputs is not None else [PsbtMap() for _ in range(n_in)],
                [PsbtMap() for _ in range(outputs)])


def test_map_editing_keeps_order_and_replaces_in_place():
    m = PsbtMap([(0x01, b"", b"utxo"), (0x03, b"", b"\x01\x00\x00\x00"), (0xF0, b"x", b"unknown")])
    m.set(0x02, b"\x02" * 33, b"sig-b")
    m.set(0x02, b"\x03" * 33, b"sig-a")
    m.set(0x03, b"", b"\x02\x00\x00\x00")
    m.set(0xFC, b"\x00\x00", b"prop")
    assert [t for t, _, _ in m] == [0x01, 0x02, 0x02, 0x03, 0xF0, 0xFC]
    assert m.items(0x02) == [(b"\x02" * 33, b"sig-b"), (b"\x03" * 33, b"sig-a")]
    assert m.get(0x03) == b"\x02\x00\x00\x00" and m.get(0x02) is None
    m.remove(0x02, b"\x02" * 33)
    assert m.items(0x02) == [(b"\x03" * 33, b"sig-a")]
    m.remove(0x02)
    assert m.items(0x02) == []


def test_input_view_writers_validate_and_finalize():
    psbt = v0()
    view = psbt.input(0)
    key = b"\x02" + b"\x11" * 32
    with pytest.raises(PSBTDecodeError, match="input 0: PSBT_IN_PARTIAL_SIG signature is not DER"):
        view.add_partial_sig(key, b"\x31" + b"\x00" * 70)
    with pytest.raises(PSBTDecodeError, match="input 0: PSBT_IN_PARTIAL_SIG key data must be a 33 or 65-byte"):
        view.add_partial_sig(key[:32], der_sig(5, 7))
    view.add_partial_sig(key, der_sig(5, 7))
    with pytest.raises(PSBTDecodeError, match="sighash 0x00, which must be implicit"):
        view.set_tap_key_sig(b"\x01" * 64 + b"\x00")
    view.set_tap_key_sig(b"\x01" * 64)
    psbt.inputs[0].set(F.PSBT_IN_WITNESS_UTXO, b"", (500).to_bytes(8, "little") + b"\x01\x51")
    psbt.inputs[0].set(0xF5, b"keep", b"unknown survives")
    assert Psbt.parse(psbt.serialize()).input(0).partial_sigs == {key: der_sig(5, 7)}
    view.set_final(None, [b"\x01" * 64])
    assert [t for t, _, _ in psbt.inputs[0]] == [F.PSBT_IN_WITNESS_UTXO, F.PSBT_IN_FINAL_SCRIPTWITNESS, 0xF5]
    assert psbt.input(0).final_script_witness == [b"\x01" * 64] and psbt.input(0).final_script_sig is None
    with pytest.raises(BadInput, match="empty scriptSig and witness"):
        view.set_final(b"", [])


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda raw: raw + b"\x00", "1 trailing bytes"),
    (lambda raw: raw.replace(PSBT_MAGIC, b"psbu\xff"), "magic"),
    (lambda raw: PSBT_MAGIC + b"\x02\xfb\x00\x04\x01\x00\x00\x00" + raw[5:], "global: PSBT_GLOBAL_VERSION key must have no key data"),
    (lambda raw: PSBT_MAGIC + b"\x01\xfb\x04\x01\x00\x00\x00" + raw[5:], "unsupported PSBT version 1"),
    (lambda raw: PSBT_MAGIC + b"\x03\xfd\x00\x00" + raw[7:], "global: entry 0: key has a non-minimal compact size"),
])
def test_structural_faults_are_named(mutate, message):
    with pytest.raises(PSBTDecodeError, match=message):
        Psbt.parse(mutate(v0().serialize()))


def test_field_faults_are_named():
    cases = [
        ((F.PSBT_IN_WITNESS_UTXO, b"", b"\x00" * 8 + b"\x05\x51"), "input 0: PSBT_IN_WITNESS_UTXO value is truncated"),
        ((F.PSBT_IN_SIGHASH_TYPE, b"", b"\x01"), "input 0: PSBT_IN_SIGHASH_TYPE value must be 4 bytes"),
        ((F.PSBT_IN_BIP32_DERIVATION, b"\x02" * 33, b"\x00" * 6), "4-byte fingerprint followed by 4-byte path"),
        ((F.PSBT_IN_SHA256, b"\x00" * 32, b"preimage"), "PSBT_IN_SHA256 preimage does not hash to the key"),
        ((F.PSBT_IN_FINAL_SCRIPTWITNESS, b"", b"\x02\x01\xaa"), "PSBT_IN_FINAL_SCRIPTWITNESS value is truncated"),
        ((F.PSBT_IN_WITNESS_UTXO, b"", (F.MAX_MONEY + 1).to_bytes(8, "little") + b"\x00"), "outside 0..21,000,000 BTC"),
    ]
    for entry, message in cases:
        with pytest.raises(PSBTDecodeError, match=message):
            Psbt.parse(v0([PsbtMap([entry])]).serialize())


def test_a_previous_transaction_of_another_coin_parses_for_the_review_to_refuse():
    # Not a decode error: the review names it (previous-tx-mismatch) so `inspect` can show it.
    other = tx_bytes(1, [(b"\x09" * 32, 0, 0)], [(1, b"")], 0)
    psbt = Psbt.parse(v0([PsbtMap([(F.PSBT_IN_NON_WITNESS_UTXO, b"", other)])]).serialize())
    assert psbt.input(0).non_witness_utxo.serialize() == other


def test_output_tap_tree_must_be_complete():
    leaf = lambda depth: bytes([depth, 0xC0, 1, 0x51])  # noqa: E731
    good = v0()
    good.outputs[0].set(F.PSBT_OUT_TAP_TREE, b"", leaf(1) + leaf(2) + leaf(2))
    assert [d for d, _, _ in Psbt.parse(good.serialize()).output(0).tap_tree] == [1, 2, 2]
    for tree, message in [(leaf(1) + leaf(2), "do not form a complete tree"),
                          (leaf(0) + leaf(1), "leaves after the tree is complete"),
                          (bytes([1, 0xC1, 1, 0x51]) + leaf(1), "leaf version 0xc1 is odd")]:
        bad = v0()
        bad.outputs[0].set(F.PSBT_OUT_TAP_TREE, b"", tree)
        with pytest.raises(PSBTDecodeError, match=f"output 0: PSBT_OUT_TAP_TREE taproot .*{message}"):
            Psbt.parse(bad.serialize())


def test_limits_are_enforced_before_parsing():
    with pytest.raises(PSBTDecodeError, match="more than the limit"):
        Psbt.parse(PSBT_MAGIC + b"\x00" * LIMITS.psbt_max_bytes)
    with pytest.raises(PSBTDecodeError, match="too large for a PSBT"):
        decode_psbt(b"A" * (2 * LIMITS.psbt_max_bytes + 5000))
    # a value length far beyond the data and the per-value limit is refused without reading it
    huge = PSBT_MAGIC + b"\x01\x00\xff" + (2**40).to_bytes(8, "little")
    with pytest.raises(PSBTDecodeError, match="global: entry 0: value declares 1099511627776 bytes"):
        Psbt.parse(huge)
    many = v0([PsbtMap([(0xF0, i.to_bytes(2, "big"), b"") for i in range(LIMITS.psbt_max_map_entries + 1)])])
    with pytest.raises(PSBTDecodeError, match=f"input 0: more than {LIMITS.psbt_max_map_entries} entries"):
        Psbt.parse(many.serialize())
    counts = PSBT_MAGIC + b"\x01\x02\x04\x02\x00\x00\x00\x01\x04\x05\xfe\xff\xff\xff\x00" \
        + b"\x01\x05\x01\x00\x01\xfb\x04\x02\x00\x00\x00\x00"
    with pytest.raises(PSBTDecodeError, match="global: 16777215 inputs exceed the limit"):
        Psbt.parse(counts)


def test_decode_says_which_encodings_were_tried():
    with pytest.raises(PSBTDecodeError) as err:
        decode_psbt(b"definitely not a psbt!")
    assert "tried binary (no 70736274ff magic)" in str(err.value)
    assert "base64 (not valid base64)" in str(err.value)
    with pytest.raises(PSBTDecodeError, match="hex \\(decoded, but no PSBT magic\\)"):
        decode_psbt(b"00112233")


def test_combine_merges_first_writer_wins_and_refuses_other_transactions():
    a, b = v0(), v0()
    a.inputs[0].set(F.PSBT_IN_SIGHASH_TYPE, b"", (1).to_bytes(4, "little"))
    b.inputs[0].set(F.PSBT_IN_SIGHASH_TYPE, b"", (3).to_bytes(4, "little"))
    b.inputs[0].set(F.PSBT_IN_PARTIAL_SIG, b"\x02" * 33, der_sig(9, 9))
    merged = combine([a, b])
    assert merged.input(0).sighash_type == 1
    assert merged.input(0).partial_sigs == {b"\x02" * 33: der_sig(9, 9)}
    assert a.input(0).partial_sigs == {}  # inputs are not modified
    with pytest.raises(BadInput, match="PSBT 1 is for different transactions"):
        combine([a, v0(n_in=2)])
    with pytest.raises(BadInput, match="no PSBT given"):
        combine([])
