"""The PSBT creator's fields a coordinator must add (BIP-174): global xpubs of every cosigner for
multisig (so a signer can check the wallet), none for single-key wallets; exact amounts given."""

from __future__ import annotations

import hashlib

import walletkit as W
from coldsign.psbt import fields as C
from coldsign.psbt.create import assemble_psbt


def _base58_payload(text: str) -> bytes:
    """Base58Check decoding written here, independent of embit: the 78-byte extended key."""
    alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
    number = 0
    for char in text:
        number = number * 58 + alphabet.index(char)
    raw = number.to_bytes(82, "big")
    body, check = raw[:-4], raw[-4:]
    assert hashlib.sha256(hashlib.sha256(body).digest()).digest()[:4] == check
    return body


def test_multisig_psbt_carries_every_cosigners_xpub_with_its_origin():
    wallet = W.wallet("wsh-sortedmulti")
    psbt = assemble_psbt(wallet, [W.coin(wallet, 0, 0)], [(W.EXTERNAL_SCRIPT, 50_000)], (3, 49_000))
    found = dict(psbt.globals.items(C.PSBT_GLOBAL_XPUB))
    expected = {}
    for name in W.COSIGNERS:
        origin, xpub = W.key_expression(name, "wsh-sortedmulti")[1:].split("]")
        fingerprint, *path = origin.split("/")
        steps = b"".join((int(p.rstrip("h")) | 0x80000000).to_bytes(4, "little") for p in path)
        expected[_base58_payload(xpub.split("/")[0])] = bytes.fromhex(fingerprint) + steps
    assert found == expected and len(found) == 3
    tx = psbt.unsigned_tx()
    assert [o.value for o in tx.vout] == [50_000, 49_000]
    assert tx.vout[1].script_pubkey.data == wallet.script_pubkey(1, 3)
    assert all(i.sequence == 0xFFFFFFFD for i in tx.vin)  # replaceable (BIP-125)


def test_single_key_psbt_has_no_global_xpub():
    wallet = W.wallet("wpkh")
    psbt = assemble_psbt(wallet, [W.coin(wallet, 0, 0)], [(W.EXTERNAL_SCRIPT, 50_000)], None, locktime=101)
    assert psbt.globals.items(C.PSBT_GLOBAL_XPUB) == []
    assert psbt.unsigned_tx().locktime == 101 and len(psbt.outputs) == 1
