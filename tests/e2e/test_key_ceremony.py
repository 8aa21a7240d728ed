"""The key ceremony of issue 4 as a custodian runs it, one command after the other:

dice + CSPRNG -> 24 words -> SLIP-39 split 2-of-3 -> combine from shares 1 and 3 -> encrypted
keystore -> export of the account as a descriptor (single key and multisig key) and as UR frames
(PNG) scanned back -> identity key into the roster. Every step's fingerprint must be the seed's, and
the exported xpubs must be what an independent implementation (PBKDF2 + bip-utils BIP-32) derives
from the words the first step wrote.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from coldsign.cli.main import app

ROLLS = ("351624462135526413365214425163315264143625512364421536631425"
         "246135514236316524351426615342136524142")          # 99 rolls: enough for 24 words
PASSWORD = "correct horse battery"

pytestmark = pytest.mark.usefixtures("fast_kdf")


def coldsign(home: Path, *args: str) -> dict:
    result = CliRunner().invoke(app, ["--home", str(home), "--network", "regtest", "--json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def independent_account(words: str, path: str):
    """(fingerprint hex, account public key, chain code) from the words, without coldsign or embit."""
    from bip_utils import Bip32Slip10Secp256k1

    seed = hashlib.pbkdf2_hmac("sha512", words.encode(), b"mnemonic", 2048)
    root = Bip32Slip10Secp256k1.FromSeed(seed)
    account = root.DerivePath(path)
    return (root.FingerPrint().ToBytes().hex(), account.PublicKey().RawCompressed().ToBytes(),
            account.ChainCode().ToBytes())


def tpub_parts(tpub: str) -> tuple[bytes, bytes]:
    """(public key, chain code) of a base58 extended key, decoded here (no library)."""
    alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
    number = 0
    for char in tpub:
        number = number * 58 + alphabet.index(char)
    raw = number.to_bytes(82, "big")[:78]
    assert raw[:4] == bytes.fromhex("043587cf")  # tpub
    return raw[45:78], raw[13:45]


def test_dice_split_restore_keystore_export(tmp_path):
    home = tmp_path / "signer"
    media = tmp_path / "media"
    media.mkdir()
    (media / "rolls.txt").write_text(ROLLS + "\n")
    (media / "password.txt").write_text(PASSWORD + "\n")

    # 1. a new seed: dice mixed with the CSPRNG, written to removable media (no terminal here)
    new = coldsign(home, "key", "new", "--words", "24", "--dice-file", str(media / "rolls.txt"),
                   "--mnemonic-out", str(media / "words.txt"))
    assert new["dice_rolls"] == 99 and new["words"] == 24
    words = (media / "words.txt").read_text().strip()
    assert len(words.split()) == 24
    fingerprint, *_ = independent_account(words, "m/84'/1'/0'")
    assert new["fingerprint"] == fingerprint

    # 2. SLIP-39 2-of-3 for three custodians
    split = coldsign(home, "key", "split", "--mnemonic-file", str(media / "words.txt"), "--threshold", "2",
                     "--shares", "3", "--out-dir", str(media / "shares"))
    assert split["fingerprint"] == fingerprint and split["share_count"] == 3
    files = [item["file"] for item in split["files"]]
    for share in files:  # one 33-word share (256-bit secret) per file, readable by its owner only
        assert len(Path(share).read_text().split()) == 33 and Path(share).stat().st_mode & 0o777 == 0o600

    # 3. two of the three shares give the seed back
    combined = coldsign(home, "key", "combine", files[0], files[2], "--mnemonic-out", str(media / "restored.txt"))
    assert combined["fingerprint"] == fingerprint
    assert [u["position"] for u in combined["used"]] == [1, 2]
    assert (media / "restored.txt").read_text().strip() == words

    # 4. into an encrypted keystore
    stored = coldsign(home, "key", "restore", "--keystore", "custodian-1", "--mnemonic-file",
                      str(media / "restored.txt"), "--password-file", str(media / "password.txt"))
    assert stored["fingerprint"] == fingerprint and stored["has_passphrase"] is False
    keystore_text = (home / "keystores" / "custodian-1.json").read_text()
    # NOTE: values only: "salt", "name" and "version" are BIP-39 words and also the file's keys
    values = []
    pending = [json.loads(keystore_text)]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            pending += item.values()
        elif isinstance(item, str):
            values.append(item)
    assert not set(values) & set(words.split())
    assert not any(f"{a} {b}" in keystore_text for a, b in zip(words.split(), words.split()[1:]))

    # 5. exports for the coordinator, from the keystore
    from_keystore = ("--keystore", "custodian-1", "--password-file", str(media / "password.txt"))
    single = coldsign(home, "key", "export", *from_keystore, "--script-type", "wpkh", "--format", "descriptor")
    _, pubkey, chain_code = independent_account(words, "m/84'/1'/0'")
    assert single["descriptor"].startswith(f"wpkh([{fingerprint}/84h/1h/0h]tpub")
    assert tpub_parts(single["xpub"]) == (pubkey, chain_code)

    multi = coldsign(home, "key", "export", *from_keystore, "--script-type", "wsh-multi", "--format", "descriptor")
    _, pubkey, chain_code = independent_account(words, "m/48'/1'/0'/2'")
    assert multi["key"] == f"[{fingerprint}/48h/1h/0h/2h]{multi['xpub']}"
    assert tpub_parts(multi["xpub"]) == (pubkey, chain_code)

    frames = media / "ur-frames"
    as_ur = coldsign(home, "key", "export", *from_keystore, "--script-type", "wsh-multi", "--format", "ur",
                     "--frames-dir", str(frames))
    from coldsign.network import Network
    from coldsign.qr import ur
    from coldsign.qr.decoders import make_decoder
    from coldsign.qr.scan import ImageFiles, receive
    from coldsign.qr.transport import Assembler
    from coldsign.wallet.urtypes_decode import decode_output

    receipt = receive(ImageFiles(str(frames / "frame-*.png")), Assembler(ur_types=ur.SUPPORTED_TYPES +
                                                                          ur.REGISTRY_TYPES), make_decoder())
    assert receipt.message.type == "crypto-output" and receipt.message.data.hex() == as_ur["cbor_hex"]
    scanned = decode_output(receipt.message.data, Network.REGTEST)
    assert scanned.keys[0].key_expression() == multi["key"] + "/<0;1>/*"

    # 6. the custodian's identity key goes into the roster
    identity = coldsign(home, "key", "identity", *from_keystore, "--roster", str(media / "roster.json"),
                        "--name", "Custodian One", "--role", "custodian")
    assert identity["added"] is True and identity["seed_fingerprint"] == fingerprint
    roster = coldsign(home, "key", "roster", str(media / "roster.json"))
    assert [(c["name"], c["identity"]) for c in roster["custodians"]] == [("Custodian One", identity["public_key"])]
