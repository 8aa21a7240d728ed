"""Wallet registrations: files under <home>/wallets, idempotence, name reuse, seed checks.

Fixture: the 2-of-3 regtest `wsh(sortedmulti)` vault of custodians A "abandon ... about",
B "legal winner ... yellow", C "letter advice ... above" (BIP-48 accounts m/48h/1h/0h/2h,
no passphrase). Seed D "zoo ... wrong" holds none of its keys.
"""

import json

import pytest
from embit import bip32, bip39
from embit.networks import NETWORKS

from coldsign.errors import BadInput, NotFound, Refused
from coldsign.keys.secret import Secret
from coldsign.keys.seed import SeedKey
from coldsign.network import Network
from coldsign.wallet import registry

ABANDON = "abandon " * 11 + "about"
LEGAL = "legal winner thank year wave sausage worth useful legal winner thank yellow"
LETTER = "letter advice cage absurd amount doctor acoustic avoid letter advice cage above"
ZOO = "zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo wrong"


def key_text(mnemonic: str, path: str = "m/48h/1h/0h/2h", *, xpub_path: str | None = None) -> str:
    root = bip32.HDKey.from_seed(bip39.mnemonic_to_seed(mnemonic))
    xpub = root.derive(xpub_path or path).to_public().to_base58(NETWORKS["test"]["xpub"])
    return f"[{root.my_fingerprint.hex()}{path[1:]}]{xpub}/<0;1>/*"


VAULT = f"wsh(sortedmulti(2,{key_text(ABANDON)},{key_text(LEGAL)},{key_text(LETTER)}))"


def seed(words: str, passphrase: str | None = None) -> SeedKey:
    return SeedKey.from_mnemonic(Secret(words), Secret(passphrase) if passphrase else None)


def test_register_writes_file_and_loads_back(tmp_path):
    reg = registry.register(tmp_path, "vault", VAULT, Network.REGTEST, seed=seed(LEGAL))
    assert reg.path == tmp_path / "wallets" / "vault.json"
    doc = json.loads(reg.path.read_text())
    assert doc["format"] == "coldsign-wallet" and doc["version"] == 1
    assert doc["descriptor"] == reg.descriptor.canonical() and doc["network"] == "regtest"
    assert doc["policy"] == "2 of 3" and [k["fingerprint"] for k in doc["keys"]][0] == "73c5da0a"
    assert reg.created.endswith("Z")
    loaded = registry.load(tmp_path, "vault")
    assert loaded.descriptor == reg.descriptor and loaded.created == reg.created
    assert loaded.descriptor.address(1, 3) == reg.descriptor.address(1, 3)


def test_same_descriptor_again_is_a_noop(tmp_path):
    first = registry.register(tmp_path, "vault", VAULT, Network.REGTEST)
    before = first.path.read_bytes()
    again = registry.register(tmp_path, "vault", first.descriptor.canonical(), Network.REGTEST)
    assert again.created == first.created and first.path.read_bytes() == before


def test_a_second_name_for_the_same_wallet_is_refused(tmp_path):
    first = registry.register(tmp_path, "treasury", VAULT, Network.REGTEST)
    with pytest.raises(Refused) as info:
        registry.register(tmp_path, "treasury2", first.descriptor.canonical(), Network.REGTEST)
    assert (info.value.code, info.value.exit_status, info.value.where) == ("wallet-registered", 4, str(first.path))
    assert info.value.message.startswith("this wallet is already registered as 'treasury': one wallet has one name")
    assert [r.name for r in registry.list_wallets(tmp_path)] == ["treasury"]
    assert registry.register(tmp_path, "signet-vault", VAULT, Network.SIGNET).name == "signet-vault"


def test_name_reuse_with_other_descriptor_refused(tmp_path):
    registry.register(tmp_path, "vault", VAULT, Network.REGTEST)
    other = f"wpkh({key_text(ABANDON, 'm/84h/1h/0h')})"
    with pytest.raises(Refused) as info:
        registry.register(tmp_path, "vault", other, Network.REGTEST)
    assert info.value.code == "wallet-exists" and info.value.exit_status == 4
    assert info.value.message == "a wallet named 'vault' is already registered with a different descriptor"
    with pytest.raises(Refused) as info:
        registry.register(tmp_path, "vault", VAULT, Network.SIGNET)
    assert info.value.message == "a wallet named 'vault' is already registered with a different network"


def test_seed_not_in_wallet_refused_and_nothing_written(tmp_path):
    with pytest.raises(Refused) as info:
        registry.register(tmp_path, "vault", VAULT, Network.REGTEST, seed=seed(ZOO))
    assert info.value.code == "seed-not-in-wallet" and info.value.exit_status == 4
    assert "is not among the wallet's keys (73c5da0a, " in info.value.message
    assert not (tmp_path / "wallets" / "vault.json").exists()


def test_passphrase_changes_the_seed(tmp_path):
    with pytest.raises(Refused) as info:
        registry.register(tmp_path, "vault", VAULT, Network.REGTEST, seed=seed(ABANDON, "TREZOR"))
    assert info.value.code == "seed-not-in-wallet"


def test_matching_fingerprint_but_other_xpub_refused(tmp_path):
    # Origin claims A's fingerprint at m/48h/1h/0h/2h, but the xpub is A's m/48h/1h/5h/2h node
    # (same depth and child number, so only the seed check can catch it).
    forged = f"wsh(sortedmulti(1,{key_text(ABANDON, xpub_path='m/48h/1h/5h/2h')},{key_text(LEGAL)}))"
    with pytest.raises(Refused) as info:
        registry.register(tmp_path, "forged", forged, Network.REGTEST, seed=seed(ABANDON))
    assert info.value.code == "seed-not-in-wallet"
    assert "the seed's fingerprint 73c5da0a is in the wallet but the xpub it derives at m/48h/1h/0h/2h " \
           "is different" in info.value.message


def test_seed_key_in_finds_the_right_key(tmp_path):
    reg = registry.register(tmp_path, "vault", VAULT, Network.REGTEST)
    key = registry.seed_key_in(reg.descriptor, seed(LETTER))
    assert key is reg.descriptor.keys[2]


@pytest.mark.parametrize("name", ["", "a b", "../x", "x" * 65, "vault.json", "ü"])
def test_bad_names(tmp_path, name):
    with pytest.raises(BadInput) as info:
        registry.register(tmp_path, name, VAULT, Network.REGTEST)
    assert info.value.message.startswith("wallet name ") and info.value.message.endswith(" is not allowed")


def test_load_missing_names_the_folder(tmp_path):
    with pytest.raises(NotFound) as info:
        registry.load(tmp_path, "nope")
    assert info.value.message == f"no wallet named 'nope' is registered in {tmp_path / 'wallets'}"
    assert info.value.exit_status == 3


def test_list_sorted_and_empty(tmp_path):
    assert registry.list_wallets(tmp_path) == []
    registry.register(tmp_path, "zeta", VAULT, Network.REGTEST)
    registry.register(tmp_path, "alpha", f"tr({key_text(ABANDON, 'm/86h/1h/0h')})", Network.TEST)
    names = [(r.name, r.network, r.descriptor.kind) for r in registry.list_wallets(tmp_path)]
    assert names == [("alpha", Network.TEST, "tr"), ("zeta", Network.REGTEST, "wsh-sortedmulti")]


def test_corrupt_and_tampered_files(tmp_path):
    reg = registry.register(tmp_path, "vault", VAULT, Network.REGTEST)
    reg.path.write_text("{not json")
    with pytest.raises(BadInput) as info:
        registry.load(tmp_path, "vault")
    assert info.value.message.startswith("corrupt wallet file: ") and info.value.where == str(reg.path)
    doc = reg.file_document()
    doc["descriptor"] = doc["descriptor"][:-1] + ("q" if doc["descriptor"][-1] != "q" else "p")
    reg.path.write_text(json.dumps(doc))
    with pytest.raises(BadInput) as info:
        registry.load(tmp_path, "vault")
    assert info.value.message.startswith("the stored descriptor is invalid: descriptor checksum mismatch")


def test_a_deeply_nested_wallet_file_is_corrupt_not_a_crash(tmp_path):
    reg = registry.register(tmp_path, "vault", VAULT, Network.REGTEST)
    reg.path.write_text("[" * 100_000)  # json.loads raises RecursionError, which used to escape (exit 70)
    with pytest.raises(BadInput) as info:
        registry.load(tmp_path, "vault")
    assert info.value.message == "corrupt wallet file: nested too deeply" and info.value.where == str(reg.path)
    with pytest.raises(BadInput):
        registry.list_wallets(tmp_path)
