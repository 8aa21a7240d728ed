"""BIP-32 test vectors 1-5 through the code coldsign uses for extended keys.

Valid vectors: the root from the seed (embit, as SeedKey does), derivation along each chain,
and both serializations parsed back through coldsign's strict `parse_extended_key`.
Vector 5: each invalid key raises DescriptorError with the message for its reason.
Source: tests/vectors/bip32/README.md.
"""

import json
from pathlib import Path

import pytest
from embit import bip32

from coldsign.errors import DescriptorError
from coldsign.wallet.keyexpr import parse_extended_key

DATA = json.loads((Path(__file__).parent / "bip32" / "bip32_vectors.json").read_text())
CHAINS = [(v["vector"], v["seed"], c) for v in DATA["valid"] for c in v["chains"]]

EXPECTED_ERRORS = {
    "pubkey version / prvkey mismatch": "public extended key version with an invalid key prefix 00",
    "prvkey version / pubkey mismatch": "private extended key version with a public key (prefix 03 instead of 00)",
    "invalid pubkey prefix 04": "public extended key version with an invalid key prefix 04",
    "invalid prvkey prefix 04": "private extended key version with a public key (prefix 04 instead of 00)",
    "invalid pubkey prefix 01": "public extended key version with an invalid key prefix 01",
    "invalid prvkey prefix 01": "private extended key version with a public key (prefix 01 instead of 00)",
    "zero depth with non-zero parent fingerprint": "zero depth with a non-zero parent fingerprint",
    "zero depth with non-zero index": "zero depth with a non-zero child index",
    "unknown extended key version": "unknown extended key version 01010101",
    "private key 0 not in 1..n-1": "private key is not in 1..n-1",
    "private key n not in 1..n-1": "private key is not in 1..n-1",
    "invalid pubkey 020000000000000000000000000000000000000000000000000000000000000007":
        "public key is not a point on secp256k1",
    "invalid checksum": "extended key has an invalid base58 checksum (mistyped?)",
}


def test_vector_counts():
    assert [v["vector"] for v in DATA["valid"]] == [1, 2, 3, 4]
    assert len(CHAINS) == 17
    assert len(DATA["invalid"]) == 16


@pytest.mark.parametrize("vector,seed,chain", CHAINS, ids=[f"v{v}-{c['path']}" for v, _, c in CHAINS])
def test_valid_chain(vector, seed, chain):
    node = bip32.HDKey.from_seed(bytes.fromhex(seed)).derive(chain["path"])
    assert node.to_base58() == chain["xprv"]
    assert node.to_public().to_base58() == chain["xpub"]
    parsed_pub = parse_extended_key(chain["xpub"])
    assert not parsed_pub.is_private
    assert parsed_pub.key.sec() == node.key.sec() and parsed_pub.chain_code == node.chain_code
    parsed_prv = parse_extended_key(chain["xprv"], allow_private=True)
    assert parsed_prv.to_base58() == chain["xprv"]


def test_private_key_refused_where_public_expected():
    with pytest.raises(DescriptorError) as info:
        parse_extended_key(DATA["valid"][0]["chains"][0]["xprv"])
    assert info.value.message == "private extended key (xprv/tprv) in a wallet descriptor"


@pytest.mark.parametrize("case", DATA["invalid"], ids=[c["reason"][:40] for c in DATA["invalid"]])
def test_invalid_extended_key(case):
    with pytest.raises(DescriptorError) as info:
        parse_extended_key(case["key"], allow_private=True)
    assert info.value.message == EXPECTED_ERRORS[case["reason"]]
    assert info.value.exit_status == 3
