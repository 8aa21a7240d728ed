"""SLIP-0010 Ed25519 test vectors through the derivation coldsign's identity key uses.

Every chain of both Ed25519 vectors (tests/vectors/slip10/README.md names the source): the chain
code and private key from `coldsign.keys.identity.slip10_ed25519` (bip-utils), the public key from
that private key through PyNaCl as `IdentityKey` computes it (the vectors' 33-byte form is 00 + the
32-byte key), and the parent fingerprint from the same bip-utils node.

Then alice's identity key (tests/walletkit.py: BIP-39 words of entropy 0x01 * 16, no passphrase) at
m/1668246628h/0h/0h is recomputed by a short, independent SLIP-10 written here from the SLIP's
text (HMAC-SHA512 keyed "ed25519 seed", hardened child = HMAC-SHA512(chain, 00 || key || index))
and the BIP-39 seed is recomputed with PBKDF2 from hashlib, so neither embit nor bip-utils is trusted.
"""

import hashlib
import hmac
import json
from pathlib import Path

import pytest

import walletkit as W
from coldsign.keys.identity import IdentityKey, slip10_ed25519

H = 0x80000000
DATA = json.loads((Path(__file__).parent / "slip10" / "ed25519.json").read_text())
CHAINS = [(v["name"], v["seed"], c) for v in DATA["vectors"] for c in v["chains"]]


def parse_path(text: str) -> tuple[int, ...]:
    steps = text.split("/")
    assert steps[0] == "m"
    assert all(step.endswith("H") for step in steps[1:]), "SLIP-10 Ed25519 vectors are all hardened"
    return tuple(int(step[:-1]) | H for step in steps[1:])


def test_vector_counts():
    assert [v["name"] for v in DATA["vectors"]] == ["Test vector 1 for ed25519", "Test vector 2 for ed25519"]
    assert len(CHAINS) == 12


@pytest.mark.parametrize("name,seed,chain", CHAINS, ids=[f"{n[12]}-{c['path']}" for n, _, c in CHAINS])
def test_chain(name, seed, chain):
    path = parse_path(chain["path"])
    private, chain_code = slip10_ed25519(bytes.fromhex(seed), path)
    assert chain_code.hex() == chain["chain_code"]
    assert private.reveal().hex() == chain["private"]
    key = IdentityKey.from_private(private)
    assert "00" + key.public_hex == chain["public"]


@pytest.mark.parametrize("name,seed,chain", CHAINS, ids=[f"{n[12]}-{c['path']}" for n, _, c in CHAINS])
def test_parent_fingerprint(name, seed, chain):
    from bip_utils import Bip32Slip10Ed25519

    node = Bip32Slip10Ed25519.FromSeed(bytes.fromhex(seed))
    for step in parse_path(chain["path"]):
        node = node.ChildKey(step)
    assert node.ParentFingerPrint().ToBytes().hex() == chain["fingerprint"]


# ---------------------------------------------------------------- independent recomputation

def independent_slip10_ed25519(seed: bytes, path: tuple[int, ...]) -> tuple[bytes, bytes]:
    """SLIP-10 for ed25519 from the SLIP's text: (private key, chain code)."""
    digest = hmac.new(b"ed25519 seed", seed, hashlib.sha512).digest()
    key, chain = digest[:32], digest[32:]
    for index in path:
        assert index >= H
        digest = hmac.new(chain, b"\x00" + key + index.to_bytes(4, "big"), hashlib.sha512).digest()
        key, chain = digest[:32], digest[32:]
    return key, chain


def test_the_independent_implementation_agrees_with_the_vectors():
    for _, seed, chain in CHAINS:
        key, code = independent_slip10_ed25519(bytes.fromhex(seed), parse_path(chain["path"]))
        assert (key.hex(), code.hex()) == (chain["private"], chain["chain_code"])


def test_alice_identity_key_matches_an_independent_derivation():
    from nacl.signing import SigningKey

    words = W.mnemonic("alice")
    bip39_seed = hashlib.pbkdf2_hmac("sha512", words.encode(), b"mnemonic", 2048)
    assert bip39_seed == W.seed("alice").seed.reveal()
    private, _ = independent_slip10_ed25519(bip39_seed, (1668246628 | H, 0 | H, 0 | H))
    expected_public = bytes(SigningKey(private).verify_key)

    identity = IdentityKey.from_seed(W.seed("alice"))
    assert identity.public_key == expected_public
    assert identity.path == "m/1668246628h/0h/0h"
    assert identity.fingerprint == "-".join(
        hashlib.sha256(expected_public).hexdigest()[i:i + 4] for i in range(0, 16, 4))

    # index 3 is the same computation one step further along the rotation index
    private3, _ = independent_slip10_ed25519(bip39_seed, (1668246628 | H, 0 | H, 3 | H))
    assert IdentityKey.from_seed(W.seed("alice"), 3).public_key == bytes(SigningKey(private3).verify_key)
