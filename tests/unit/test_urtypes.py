"""crypto-output / crypto-account of coldsign's own exports, and hostile input to the decoder.

Round trip: alice's (tests/walletkit.py) regtest exports decode back to her key expressions,
and the decoded single-sig descriptors derive the same first address as her wallet descriptor.
Hostile: oversize, trailing bytes, duplicate keys, wrong tags and types, private keys, a
mainnet key on regtest — each asserting QRDecodeError and its message.
"""

from __future__ import annotations

import cbor2
import pytest

import walletkit as W
from coldsign.network import Network
from coldsign.qr.errors import QRDecodeError
from coldsign.wallet import urtypes as U
from coldsign.wallet import urtypes_decode as D
from coldsign.wallet.descriptor import WalletDescriptor

R = Network.REGTEST


@pytest.mark.parametrize("kind,script_type", [("wpkh", "wpkh"), ("sh-wpkh", "sh-wpkh"), ("tr", "tr")])
def test_single_sig_crypto_output_round_trips_to_the_wallet_descriptor(kind, script_type):
    seed = W.seed("alice")
    data = U.crypto_output(seed, script_type, W.ACCOUNT_PATHS[kind], R)
    out = D.decode_output(data, R)
    assert out.text == W.descriptor(kind) and not out.cosigner
    decoded = WalletDescriptor.parse(out.descriptor, R)
    assert decoded.address(0, 0) == W.wallet(kind).address(0, 0)


def test_multisig_cosigner_output_is_wsh_cosigner_and_gives_the_key_expression():
    seed = W.seed("bob")
    data = U.crypto_output(seed, "wsh-multi", W.ACCOUNT_PATHS["wsh-sortedmulti"], R)
    item = cbor2.loads(data)
    assert item.tag == U.TAG_WSH and item.value.tag == U.TAG_COSIGNER and item.value.value.tag == U.TAG_HDKEY
    out = D.decode_output(data, R)
    assert out.cosigner and out.key_expressions == (W.key_expression("bob", "wsh-sortedmulti"),)
    with pytest.raises(QRDecodeError) as info:
        out.descriptor
    assert info.value.message == "a cosigner key is not a descriptor; use key_expressions"


def test_crypto_account_has_the_four_coldsign_types_with_testnet_use_info():
    seed = W.seed("alice")
    account = D.decode_account(U.crypto_account(seed, R, 0), R)
    assert account.master_fingerprint == seed.fingerprint
    texts = [o.text for o in account.outputs]
    assert texts[0] == W.descriptor("sh-wpkh") and texts[1] == W.descriptor("wpkh") and texts[3] == W.descriptor("tr")
    assert texts[2] == f"wsh(cosigner({W.key_expression('alice', 'wsh-sortedmulti')}))"
    assert all(k.testnet for o in account.outputs for k in o.keys)


def test_account_number_moves_every_path():
    account = D.decode_account(U.crypto_account(W.seed("alice"), R, 7), R)
    assert [o.keys[0].origin[2] & 0x7FFFFFFF for o in account.outputs] == [7, 7, 7, 7]


def _message(call, *args) -> str:
    with pytest.raises(QRDecodeError) as info:
        call(*args)
    return info.value.message


def test_hostile_sizes_and_serialization_are_refused():
    good = U.crypto_output(W.seed("alice"), "wpkh", W.ACCOUNT_PATHS["wpkh"], R)
    assert _message(D.decode_output, b"", R) == "crypto-output: empty"
    big = b"\x00" * (U.MAX_REGISTRY_CBOR_BYTES + 1)
    assert _message(D.decode_output, big, R) == f"crypto-output: {len(big)} bytes is above the limit of 65536"
    assert _message(D.decode_output, good + b"\x00", R).startswith("crypto-output: CBOR not in preferred")
    assert _message(D.decode_output, good[:-3], R).startswith("crypto-output: not valid CBOR")
    # a map with key 3 twice
    dup = bytes.fromhex("d90194d9012fa2035821") + b"\x02" * 33 + bytes.fromhex("035821") + b"\x02" * 33
    assert _message(D.decode_output, dup, R).startswith("crypto-output: CBOR not in preferred")
    # indefinite-length array inside the components
    indefinite = cbor2.dumps(cbor2.CBORTag(404, cbor2.CBORTag(303, {3: b"\x02" * 33})), canonical=True)
    assert _message(D.decode_output, indefinite[:-1] + b"\x9f\xff", R).startswith("crypto-output:")


def _wpkh(hdkey: dict, tag: int = U.TAG_WPKH) -> bytes:
    return cbor2.dumps(cbor2.CBORTag(tag, cbor2.CBORTag(U.TAG_HDKEY, hdkey)), canonical=True)


def test_wrong_tags_types_and_values_are_refused_by_name():
    seed = W.seed("alice")
    node = seed.root.reveal().derive(list(W.ACCOUNT_PATHS["wpkh"])).to_public()
    base = U.hdkey_map(node.key.sec(), node.chain_code, R, origin=W.ACCOUNT_PATHS["wpkh"],
                       source_fingerprint=seed.fingerprint, parent_fingerprint=node.fingerprint)
    assert D.decode_output(_wpkh(base), R).text == W.descriptor("wpkh")
    assert _message(D.decode_output, _wpkh(base, 999), R) == (
        "crypto-output: expected a script expression (tags 400-410), found tag 999")
    assert _message(D.decode_output, cbor2.dumps([1, 2]), R) == (
        "crypto-output: expected a script expression (tags 400-410), found an array")
    assert _message(D.decode_output, _wpkh({**base, 3: b"\x02" * 32}), R) == (
        "crypto-output wpkh() key key-data: expected 33 bytes, found 32 bytes")
    assert _message(D.decode_output, _wpkh({**base, 11: 1}), R) == "crypto-output wpkh() key: unknown map key 11"
    private = {**base, 2: True, 3: b"\x00" + b"\x11" * 32}
    assert _message(D.decode_output, _wpkh(private), R) == (
        "crypto-output wpkh() key: carries a private key; an account export must hold public keys only")
    assert _message(D.decode_output, _wpkh({**base, 2: True}), R) == (
        "crypto-output wpkh() key: key-data does not match is-private (private keys start with 0x00)")
    assert _message(D.decode_output, _wpkh(base), Network.MAIN) == (
        "crypto-output wpkh() key: a testnet key, but the network is main")
    wrong_origin = {**base, 6: cbor2.CBORTag(305, {1: [84, True]})}
    assert _message(D.decode_output, _wpkh(wrong_origin), R) == (
        "crypto-output wpkh() key origin: expected tag 304, found tag 305")
    no_flag = {**base, 6: cbor2.CBORTag(304, {1: [84, True, 1]})}
    assert _message(D.decode_output, _wpkh(no_flag), R) == (
        "crypto-output wpkh() key origin: components: step 2 has no is-hardened flag")
    zero_fp = {**base, 8: 0}
    assert _message(D.decode_output, _wpkh(zero_fp), R) == (
        "crypto-output wpkh() key parent-fingerprint: a fingerprint is never 0")
    off_curve = {**base, 3: b"\x02" + b"\xff" * 32}
    assert _message(D.decode_output, _wpkh(off_curve), R).startswith(
        "crypto-hdkey key-data is not a valid public key")
    eth = {**base, 5: cbor2.CBORTag(305, {1: 60})}
    assert _message(D.decode_output, _wpkh(eth), R) == (
        "crypto-output wpkh() key: use-info is coin type 60, not bitcoin (0)")


def test_crypto_account_structure_is_checked():
    assert _message(D.decode_account, cbor2.dumps({1: 5}), R) == (
        "crypto-account: needs master-fingerprint (1) and output-descriptors (2)")
    assert _message(D.decode_account, cbor2.dumps({1: 5, 2: []}), R) == (
        "crypto-account: output-descriptors must be an array of 1 to 32 outputs")
    assert _message(D.decode_account, cbor2.dumps({1: 0, 2: [1]}), R) == (
        "crypto-account master-fingerprint: a fingerprint is never 0")
    assert _message(D.decode_account, cbor2.dumps({1: 5, 2: [1]}), R) == (
        "crypto-account output 1: expected a script expression (tags 400-410), found an integer")


def test_a_huge_integer_in_a_message_is_named_not_a_crash():
    """cbor2 decodes a tag-2 bignum of thousands of digits; repr() of it raises ValueError (Python's
    int/str digit limit), which used to escape as exit 70 while naming the bad map key or network."""
    huge = 1 << 16_000
    key = {3: b"\x02" + b"\x11" * 32}
    assert _message(D.decode_output, _wpkh({**key, huge: 1}), R) == (
        "crypto-output wpkh() key: unknown map key an integer")
    network = {**key, 5: cbor2.CBORTag(305, {2: huge})}
    assert _message(D.decode_output, _wpkh(network), R) == (
        "crypto-output wpkh() key: use-info network an integer is neither mainnet (0) nor testnet (1)")
    long_text = {**key, "x" * 100: 1}
    assert _message(D.decode_output, _wpkh(long_text), R) == (
        f"crypto-output wpkh() key: unknown map key {repr('x' * 100)[:37]}...")
