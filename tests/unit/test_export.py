"""Account exports of alice's seed (tests/walletkit.py), checked against embit's own BIP-32
derivation and descriptor classes: standard paths, --path parsing, descriptors with checksum,
and Coldcard's generic JSON (SLIP-132 `_pub`, `first` address, own-key `xfp`)."""

from __future__ import annotations

import pytest
from embit import bip32, bip39
from embit.descriptor import Descriptor
from embit.hashes import hash160
from embit.networks import NETWORKS

import walletkit as W
from coldsign.errors import UsageProblem
from coldsign.keys import export as X
from coldsign.network import Network

H = 0x80000000
R = Network.REGTEST


def _root():
    return bip32.HDKey.from_seed(bip39.mnemonic_to_seed(W.mnemonic("alice")))


def test_standard_paths_per_script_type_and_network():
    assert X.standard_path("wpkh", R, 0) == (84 | H, 1 | H, H)
    assert X.standard_path("sh-wpkh", Network.MAIN, 3) == (49 | H, H, 3 | H)
    assert X.standard_path("tr", Network.SIGNET, 0) == (86 | H, 1 | H, H)
    assert X.standard_path("wsh-multi", R, 2) == (48 | H, 1 | H, 2 | H, 2 | H)
    with pytest.raises(UsageProblem) as info:
        X.standard_path("pkh", R)
    assert info.value.message == "unknown script type 'pkh'"


def test_path_parsing_accepts_the_usual_spellings_and_says_what_is_wrong():
    for text in ("m/84h/1h/5h", "84'/1'/5'", "M/84H/1H/5H", " m/84h/1h/5h "):
        assert X.parse_account_path(text, R) == (84 | H, 1 | H, 5 | H)
    cases = {
        "m/84h/1/0h": "--path step 2 ('1') is not hardened: an account path is hardened at every step",
        "m/84h/xh": "--path step 2 ('xh') is not a number",
        "m": "--path 'm' has no steps",
        "m/" + "/".join(["1h"] * 11): "--path has 11 steps; at most 10 are accepted",
        "m/84h/0h/0h": "--path coin type 0 is not regtest's (1)",
        "m/84h/2147483648h": "--path step 2 ('2147483648h') is above 2147483647",
        "m/84h/" + "9" * 5000 + "h": "--path step 2 ('999999999999... (5000 digits)') is above 2147483647",
        "m84h": "--path 'm84h': expected m/ followed by steps, e.g. m/84h/1h/0h",
    }
    for text, message in cases.items():
        with pytest.raises(UsageProblem) as info:
            X.parse_account_path(text, R)
        assert info.value.message == message
    assert X.parse_account_path("m/84h/0h/0h", Network.MAIN) == (84 | H, H, H)
    assert X.parse_account_path("m/1000h/7h", R) == (1000 | H, 7 | H)     # a non-standard purpose is allowed


@pytest.mark.parametrize("script_type,purpose", [("wpkh", 84), ("sh-wpkh", 49), ("tr", 86)])
def test_single_sig_descriptor_matches_embit_derivation(script_type, purpose):
    seed = W.seed("alice")
    path = X.standard_path(script_type, R, 0)
    text = X.descriptor_export(seed, script_type, path, R)
    node = _root().derive(f"m/{purpose}h/1h/0h")
    xpub = node.to_public().to_base58(NETWORKS["regtest"]["xpub"])
    assert f"[{seed.fingerprint_hex}/{purpose}h/1h/0h]{xpub}/<0;1>/*" in text
    # embit's descriptor class derives receive address 0 independently of coldsign
    body, checksum = text.split("#")
    embit_first = Descriptor.from_string(body.replace("<0;1>", "0")).derive(0).address(NETWORKS["regtest"])
    assert X.first_address(text, R) == embit_first
    assert len(checksum) == 8


def test_multisig_export_is_the_cosigner_key_expression():
    text = X.descriptor_export(W.seed("alice"), "wsh-multi", X.standard_path("wsh-multi", R), R)
    xpub = _root().derive("m/48h/1h/0h/2h").to_public().to_base58(NETWORKS["regtest"]["xpub"])
    assert text == f"[{W.seed('alice').fingerprint_hex}/48h/1h/0h/2h]{xpub}"


def test_coldcard_generic_json_fields():
    seed = W.seed("alice")
    doc = X.coldcard_json(seed, R, 0)
    root = _root()
    net = NETWORKS["regtest"]
    assert doc["chain"] == "XRT" and doc["xfp"] == seed.fingerprint_hex.upper() and doc["account"] == 0
    assert doc["xpub"] == root.to_public().to_base58(net["xpub"])
    assert set(doc) == {"chain", "xfp", "xpub", "account", "bip49", "bip84", "bip86", "bip48_2"}
    for section, path, slip132, name in (("bip49", "m/49h/1h/0h", "ypub", "p2wpkh-p2sh"),
                                         ("bip84", "m/84h/1h/0h", "zpub", "p2wpkh"),
                                         ("bip86", "m/86h/1h/0h", None, "p2tr"),
                                         ("bip48_2", "m/48h/1h/0h/2h", "Zpub", "p2wsh")):
        node = root.derive(path).to_public()
        entry = doc[section]
        assert entry["xpub"] == node.to_base58(net["xpub"])
        assert entry.get("_pub") == (node.to_base58(net[slip132]) if slip132 else None)
        assert entry["deriv"] == path.replace("h", "'") and entry["name"] == name
        assert entry["xfp"] == hash160(node.key.sec())[:4].hex().upper()
    assert doc["bip84"]["first"] == W.wallet("wpkh").address(0, 0)
    assert doc["bip49"]["first"] == W.wallet("sh-wpkh").address(0, 0)
    assert doc["bip86"]["first"] == W.wallet("tr").address(0, 0)
    assert "first" not in doc["bip48_2"]
    assert doc["bip84"]["_pub"].startswith("vpub") and doc["bip49"]["_pub"].startswith("upub")
    assert X.coldcard_json(seed, Network.MAIN, 5)["bip84"]["_pub"].startswith("zpub")
    assert X.coldcard_json(seed, Network.MAIN, 5)["chain"] == "BTC"
    assert X.coldcard_json(seed, Network.SIGNET, 0)["chain"] == "XTN"
