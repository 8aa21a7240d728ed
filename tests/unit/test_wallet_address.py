"""The one address check (coldsign.wallet.address), used by `watch send` and the policy's address book.

Scripts are built by hand (P2PKH, P2SH, P2WPKH, P2WSH, P2TR over fixed 20/32-byte payloads), encoded
to an address by embit's own encoder (`Script.address`, independent of the decoder under test) on
each network, and must decode back to the same script on that network and only on the networks
that share its prefixes. The mainnet P2WPKH pair is BIP-173's example (bc1qw508d6…f3t4).
"""

from __future__ import annotations

import pytest
from embit.script import Script

from coldsign.errors import BadInput
from coldsign.network import Network
from coldsign.wallet.address import address_script, canonical_address, networks_of, script_of

H20 = bytes(range(1, 21))
H32 = bytes(range(1, 33))
SCRIPTS = {
    "p2pkh": b"\x76\xa9\x14" + H20 + b"\x88\xac",
    "p2sh": b"\xa9\x14" + H20 + b"\x87",
    "p2wpkh": b"\x00\x14" + H20,
    "p2wsh": b"\x00\x20" + H32,
    "p2tr": b"\x51\x20" + H32,
}
# who shares whose prefixes: testnet and signet share everything; regtest shares their base58 ones
SHARED_BASE58 = {Network.MAIN: [Network.MAIN], Network.TEST: [Network.TEST, Network.SIGNET, Network.REGTEST],
                 Network.SIGNET: [Network.TEST, Network.SIGNET, Network.REGTEST],
                 Network.REGTEST: [Network.TEST, Network.SIGNET, Network.REGTEST]}
SHARED_BECH32 = {Network.MAIN: [Network.MAIN], Network.TEST: [Network.TEST, Network.SIGNET],
                 Network.SIGNET: [Network.TEST, Network.SIGNET], Network.REGTEST: [Network.REGTEST]}
BIP173 = "BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4"


@pytest.mark.parametrize("network", list(Network))
@pytest.mark.parametrize("kind", list(SCRIPTS))
def test_every_standard_address_decodes_to_its_script_on_its_networks_only(kind, network):
    address = Script(SCRIPTS[kind]).address(network.embit)
    assert script_of(address, network) == SCRIPTS[kind]
    assert address_script(f"  {address} ", network) == SCRIPTS[kind]
    shared = (SHARED_BASE58 if kind in ("p2pkh", "p2sh") else SHARED_BECH32)[network]
    assert networks_of(address) == shared
    for other in Network:
        assert (script_of(address, other) is not None) == (other in shared)


def test_bech32_is_canonical_in_lower_case_and_mixed_case_is_refused():
    script = bytes.fromhex("0014751e76e8199196d454941c45d1b3a323f1433bd6")
    assert script_of(BIP173, Network.MAIN) == script
    assert canonical_address(BIP173, Network.MAIN) == BIP173.lower()
    mixed = BIP173[:10].lower() + BIP173[10:]
    assert script_of(mixed, Network.MAIN) is None and canonical_address(mixed, Network.MAIN) is None
    base58 = Script(SCRIPTS["p2pkh"]).address(Network.MAIN.embit)
    assert canonical_address(base58, Network.MAIN) == base58        # base58 is case-sensitive: as written


@pytest.mark.parametrize("text", ["", "bc1", "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t5",   # bad checksum
                                  "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN3", "not an address", "bc1" + "q" * 100])
def test_junk_is_no_address_anywhere(text):
    assert networks_of(text) == []
    with pytest.raises(BadInput) as err:
        address_script(text, Network.MAIN)
    assert err.value.message == f"{text!r} is not a valid mainnet address"


def test_another_network_s_address_is_refused_naming_it():
    testnet = Script(SCRIPTS["p2wpkh"]).address(Network.TEST.embit)
    with pytest.raises(BadInput) as err:
        address_script(testnet, Network.MAIN)
    assert err.value.message == f"{testnet} is a testnet/signet address; this wallet is on mainnet"
    with pytest.raises(BadInput) as err:
        address_script(BIP173.lower(), Network.REGTEST)
    assert err.value.message == f"{BIP173.lower()} is a mainnet address; this wallet is on regtest"
