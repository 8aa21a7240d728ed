"""WalletDescriptor: parsing custody descriptors, canonical form, fast derivation, locate.

Fixtures (all regtest unless said): three custodians whose seeds are BIP-39 test mnemonics
without passphrase — A "abandon ... about", B "legal winner ... yellow", C "letter advice ...
above" — each exporting the BIP-48 P2WSH account m/48h/1h/0h/2h as a tpub with its origin.
The 2-of-3 `wsh(sortedmulti)` wallet built from them is cross-checked against embit's own
descriptor engine (an independent implementation of the same BIPs). Single-key wallets are
checked against the published BIP-49/84/86 addresses of "abandon ... about".
"""

import pytest
from embit import bip32, bip39
from embit.descriptor import Descriptor
from embit.networks import NETWORKS

from coldsign.errors import DescriptorError
from coldsign.network import Network
from coldsign.wallet.descriptor import WalletDescriptor
from coldsign.wallet.keyexpr import HARDENED
from coldsign.wallet.scriptexpr import descriptor_checksum

ABANDON = "abandon " * 11 + "about"
LEGAL = "legal winner thank year wave sausage worth useful legal winner thank yellow"
LETTER = "letter advice cage absurd amount doctor acoustic avoid letter advice cage above"
BIP48 = "m/48h/1h/0h/2h"


def key_text(mnemonic: str, path: str, network: str = "test", branches: str = "/<0;1>/*") -> str:
    root = bip32.HDKey.from_seed(bip39.mnemonic_to_seed(mnemonic))
    xpub = root.derive(path).to_public().to_base58(NETWORKS[network]["xpub"])
    return f"[{root.my_fingerprint.hex()}{path[1:]}]{xpub}{branches}"


def multisig_text(branches: str = "/<0;1>/*", kind: str = "sortedmulti") -> str:
    keys = ",".join(key_text(m, BIP48, branches=branches) for m in (ABANDON, LEGAL, LETTER))
    return f"wsh({kind}(2,{keys}))"


@pytest.fixture(scope="module")
def vault() -> WalletDescriptor:
    return WalletDescriptor.parse(multisig_text(), Network.REGTEST)


def test_multisig_shape_and_canonical(vault):
    assert vault.kind == "wsh-sortedmulti" and vault.threshold == 2 and vault.policy == "2 of 3"
    assert vault.keys[0].origin.fingerprint.hex() == "73c5da0a"  # the master fingerprint of "abandon ... about"
    assert vault.keys[0].origin.path == (48 | HARDENED, 1 | HARDENED, 0 | HARDENED, 2 | HARDENED)
    text = vault.canonical()
    body, checksum = text.split("#")
    assert checksum == descriptor_checksum(body) and "/<0;1>/*" in body and "'" not in body
    assert WalletDescriptor.parse(text, Network.REGTEST) == vault


@pytest.mark.parametrize("change", [0, 1])
def test_multisig_matches_embit_engine(vault, change):
    reference = Descriptor.from_string(multisig_text())
    for index in (0, 1, 7, 1000):
        derived = reference.derive(index, branch_index=change)
        assert vault.script_pubkey(change, index) == derived.script_pubkey().data
        assert vault.witness_script(change, index) == derived.witness_script().data
        assert vault.address(change, index) == derived.address(NETWORKS["regtest"])
        assert vault.redeem_script(change, index) is None and vault.tap_internal_key(change, index) is None


def test_multi_keeps_order_and_sortedmulti_sorts():
    multi = WalletDescriptor.parse(multisig_text(kind="multi"), Network.REGTEST)
    script = multi.witness_script(0, 3)
    keys = [script[2 + 34 * i: 2 + 34 * i + 33] for i in range(3)]
    assert keys == [k.pubkey_at(0, 3) for k in multi.keys]
    sortedm = WalletDescriptor.parse(multisig_text(), Network.REGTEST).witness_script(0, 3)
    assert [sortedm[2 + 34 * i: 2 + 34 * i + 33] for i in range(3)] == sorted(keys)
    assert script[0] == 0x52 and script[-2:] == bytes([0x53, 0xAE])


def test_receive_and_change_pair_equals_multipath(vault):
    pair = WalletDescriptor.parse(multisig_text("/0/*"), Network.REGTEST, multisig_text("/1/*"))
    assert pair.canonical() == vault.canonical()
    assert pair.address(1, 5) == vault.address(1, 5)
    assert vault.branch_descriptor(1).split("#")[0] == multisig_text("/1/*").replace("'", "h")


def test_bip84_wpkh_published_addresses():
    # BIP-84 test vectors: "abandon ... about", account m/84'/0'/0' on mainnet.
    wallet = WalletDescriptor.parse(f"wpkh({key_text(ABANDON, 'm/84h/0h/0h', 'main')})", Network.MAIN)
    assert wallet.address(0, 0) == "bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyu"
    assert wallet.address(0, 1) == "bc1qnjg0jd8228aq7egyzacy8cys3knf9xvrerkf9g"
    assert wallet.address(1, 0) == "bc1q8c6fshw2dlwun7ekn9qwf37cu2rn755upcp6el"
    assert wallet.keys[0].pubkey_at(0, 0).hex() == "0330d54fd0dd420a6e5f8d3624f5f3482cae350f79d5f0753bf5beef9c2d91af3c"
    assert wallet.policy == "single key" and wallet.threshold is None


def test_bip49_sh_wpkh_published_address():
    # BIP-49 test vector: "abandon ... about", testnet account m/49'/1'/0', first receive address.
    wallet = WalletDescriptor.parse(f"sh(wpkh({key_text(ABANDON, 'm/49h/1h/0h')}))", Network.TEST)
    assert wallet.kind == "sh-wpkh"
    assert wallet.address(0, 0) == "2Mww8dCYPUpKHofjgcXcBCEGmniw9CoaiD2"
    redeem = wallet.redeem_script(0, 0)
    assert redeem[:2] == b"\x00\x14" and len(redeem) == 22 and wallet.witness_script(0, 0) is None


def test_bip86_tr_published_address():
    # BIP-86 test vectors: "abandon ... about", account m/86'/0'/0'.
    wallet = WalletDescriptor.parse(f"tr({key_text(ABANDON, 'm/86h/0h/0h', 'main')})", Network.MAIN)
    assert wallet.tap_internal_key(0, 0).hex() == "cc8a4bc64d897bddc5fbc2f670f7a8ba0b386779106cf1223c6fc5d7cd6fc115"
    assert wallet.script_pubkey(0, 0).hex() == "5120a60869f0dbcf1dc659c9cecbaf8050135ea9e8cdc487053f1dc6880949dc684c"
    assert wallet.address(0, 0) == "bc1p5cyxnuxmeuwuvkwfem96lqzszd02n6xdcjrs20cac6yqjjwudpxqkedrcr"
    assert wallet.address(1, 0) == "bc1p3qkhfews2uk44qtvauqyr2ttdsw7svhkl9nkm9s9c3x4ax5h60wqwruhk7"


def test_pubkey_at_matches_bip32_and_caches(vault):
    key = vault.keys[1]
    expected = key.xpub.derive([1, 42]).key.sec()
    assert key.pubkey_at(1, 42) == expected
    assert key.pubkey_at(1, 42) is key.pubkey_at(1, 42)
    assert set(key._branches) >= {1}
    with pytest.raises(DescriptorError) as info:
        key.pubkey_at(2, 0)
    assert info.value.message == "change must be 0 (receive) or 1 (change), got 2"
    with pytest.raises(DescriptorError) as info:
        key.pubkey_at(0, HARDENED)
    assert info.value.message == "address index 2147483648 is out of range 0..2147483647"


def test_locate(vault):
    key = vault.keys[2]
    found = vault.locate(key.origin.fingerprint, key.origin.path + (1, 9))
    assert found == (key, 1, 9)
    assert vault.locate(key.origin.fingerprint, key.origin.path + (2, 9)) is None
    assert vault.locate(key.origin.fingerprint, key.origin.path + (0, 9 | HARDENED)) is None
    assert vault.locate(key.origin.fingerprint, key.origin.path + (0,)) is None
    assert vault.locate(b"\x00\x00\x00\x00", key.origin.path + (0, 1)) is None
    assert vault.locate(key.origin.fingerprint, (44 | HARDENED,) + key.origin.path[1:] + (0, 1)) is None


def test_missing_checksum_is_added_and_wrong_one_names_expected():
    text = multisig_text()
    expected = descriptor_checksum(text)
    assert WalletDescriptor.parse(text, Network.REGTEST).canonical().endswith("#" + descriptor_checksum(
        text.replace("'", "h")))
    with pytest.raises(DescriptorError) as info:
        WalletDescriptor.parse(text + "#qqqqqqqq", Network.REGTEST)
    assert info.value.message == f"descriptor checksum mismatch: got #qqqqqqqq, expected #{expected}"


@pytest.mark.parametrize("text,network,message", [
    (multisig_text(), Network.MAIN, "key 1 is an tpub (test/signet/regtest) key but the network is main"),
    (f"wpkh({key_text(ABANDON, 'm/84h/0h/0h', 'main')})", Network.SIGNET,
     "the key is an xpub (main) key but the network is signet"),
    (multisig_text("/0/*"), Network.REGTEST, "key 1 must end in /<0;1>/*"),
    (multisig_text("/<1;0>/*"), Network.REGTEST, "key 1 must end in /<0;1>/*"),
    (f"wpkh({key_text(ABANDON, BIP48).split(']')[1]})", Network.REGTEST,
     "the key has no key origin [fingerprint/path]"),
    ("wpkh(0330d54fd0dd420a6e5f8d3624f5f3482cae350f79d5f0753bf5beef9c2d91af3c)", Network.REGTEST,
     "key 1 must end in /<0;1>/*"),
    (f"wsh(sortedmulti(2,{key_text(ABANDON, BIP48)},{key_text(ABANDON, BIP48)}))", Network.REGTEST,
     "key 2 appears twice in the descriptor"),
    (f"wpkh({key_text(ABANDON, BIP48).replace('/48h/1h/0h/2h', '/48h/1h/0h')})", Network.REGTEST,
     "the key: the xpub's depth 4 does not match its origin path m/48h/1h/0h (3 steps)"),
    (f"pkh({key_text(ABANDON, BIP48)})", Network.REGTEST, "unsupported descriptor: pkh() at the top level"),
    (f"sh(wsh(sortedmulti(1,{key_text(ABANDON, BIP48)})))", Network.REGTEST,
     "unsupported descriptor: sh(wsh(...))"),
    ("wsh(sortedmulti(2," + ",".join(key_text(ABANDON, f"m/48h/1h/{i}h/2h") for i in range(16)) + "))",
     Network.REGTEST, "unsupported descriptor: multisig with 16 keys (at most 15)"),
])
def test_refused_descriptors(text, network, message):
    with pytest.raises(DescriptorError) as info:
        WalletDescriptor.parse(text, network)
    assert info.value.message == message
    assert info.value.exit_status == 3


def test_xprv_refused_and_never_echoed():
    root = bip32.HDKey.from_seed(bip39.mnemonic_to_seed(ABANDON))
    xprv = root.derive("m/84h/1h/0h").to_base58(NETWORKS["test"]["xprv"])
    with pytest.raises(DescriptorError) as info:
        WalletDescriptor.parse(f"wpkh([{root.my_fingerprint.hex()}/84h/1h/0h]{xprv}/<0;1>/*)", Network.REGTEST)
    assert info.value.message == "private extended key (xprv/tprv) in a wallet descriptor"
    assert xprv not in str(info.value)


def test_change_descriptor_must_match_receive():
    receive = multisig_text("/0/*")
    other = multisig_text("/1/*", kind="multi")
    with pytest.raises(DescriptorError) as info:
        WalletDescriptor.parse(receive, Network.REGTEST, other)
    assert info.value.message.startswith("the change descriptor is not the receive descriptor with /1/*")
    with pytest.raises(DescriptorError) as info:
        WalletDescriptor.parse(receive, Network.REGTEST, multisig_text("/0/*"))
    assert info.value.message == "key 1 must end in /1/* (change)"


def test_fifteen_keys_is_the_maximum():
    text = "wsh(sortedmulti(15," + ",".join(key_text(ABANDON, f"m/48h/1h/{i}h/2h") for i in range(15)) + "))"
    wallet = WalletDescriptor.parse(text, Network.REGTEST)
    assert wallet.policy == "15 of 15"
    script = wallet.witness_script(0, 0)
    assert script[0] == 0x5F and script[-2] == 0x5F and len(script) == 3 + 15 * 34


XPUB = key_text(ABANDON, BIP48, branches="").split("]")[1]


@pytest.mark.parametrize("text, message", [
    # a number of thousands of digits used to escape as Python's ValueError (int/str digit limit): exit 70
    (f"wsh(sortedmulti({'9' * 5000},{key_text(ABANDON, BIP48)}))",
     "multisig threshold 999999999999... (5000 digits) is larger than the 1 keys"),
    (f"wpkh([73c5da0a/{'9' * 5000}h]{XPUB}/<0;1>/*)",
     "derivation index 999999999999... (5000 digits) in wpkh() key's origin is out of range (max 2147483647)"),
    (f"wpkh({XPUB}/{'1' * 5000}/*)",
     "derivation index 111111111111... (5000 digits) in wpkh() key's derivation is out of range (max 2147483647)"),
    (f"wpkh({XPUB}/<{'1' * 5000};1>/*)",
     "derivation index 111111111111... (5000 digits) in wpkh() key's multipath step is out of range "
     "(max 2147483647)"),
    (f"wpkh({XPUB}/4294967296/*)",
     "derivation index 4294967296 in wpkh() key's derivation is out of range (max 2147483647)"),
])
def test_huge_numbers_are_descriptor_errors(text, message):
    with pytest.raises(DescriptorError) as err:
        WalletDescriptor.parse(text, Network.REGTEST)
    assert err.value.message == message
