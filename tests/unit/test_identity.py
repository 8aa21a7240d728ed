"""The custodian identity key (coldsign.keys.identity): path, fingerprint, signing, verification, reprs.

Seeds are the walletkit cosigners (tests/walletkit.py): alice = BIP-39 words of entropy 0x01 * 16,
bob = 0x02 * 16, no passphrase unless a test says so. The SLIP-10 derivation itself is held to the
official vectors in tests/vectors/test_slip10.py; here: what coldsign builds on it.
"""

from __future__ import annotations

import hashlib
import pickle

import pytest

import walletkit as W
from coldsign.errors import BadInput, SecretProblem
from coldsign.keys.identity import (IDENTITY_PURPOSE, IdentityKey, fingerprint_of, format_identity_path,
                                    identity_path, signed_message, slip10_ed25519, verify)
from coldsign.keys.secret import Secret
from coldsign.keys.seed import SeedKey

H = 0x80000000
MESSAGE = b"approve withdrawal 7f3a: 150000 sat to bcrt1q..."


@pytest.fixture(scope="module")
def alice() -> IdentityKey:
    return IdentityKey.from_seed(W.seed("alice"))


def private_hex(seed: SeedKey, index: int = 0) -> str:
    return slip10_ed25519(seed.seed.reveal(), identity_path(index))[0].reveal().hex()


# ---------------------------------------------------------------- the path

def test_path_is_all_hardened_under_the_cold_purpose():
    assert IDENTITY_PURPOSE == int.from_bytes(b"cold", "big") == 1668246628
    assert identity_path(0) == (1668246628 | H, 0 | H, 0 | H)
    assert identity_path(7) == (1668246628 | H, 0 | H, 7 | H)
    assert format_identity_path(5) == "m/1668246628h/0h/5h"
    assert identity_path(H - 1)[-1] == 0xFFFFFFFF


def test_the_purpose_collides_with_no_coin_or_identity_standard():
    assert IDENTITY_PURPOSE not in (13, 17, 44, 45, 48, 49, 84, 86, 87, 1852, 83696968)


@pytest.mark.parametrize("index", [-1, H, True, "1", 1.0])
def test_bad_index_is_refused(index):
    with pytest.raises(BadInput) as info:
        identity_path(index)
    assert info.value.message == f"identity index must be a whole number from 0 to 2147483647, not {index!r}"
    assert info.value.code == "identity-index"


def test_slip10_refuses_an_unhardened_step_and_a_short_seed():
    with pytest.raises(BadInput) as info:
        slip10_ed25519(bytes(32), (H, 1))
    assert info.value.message == "SLIP-10 Ed25519 derives hardened steps only"
    with pytest.raises(BadInput) as info:
        slip10_ed25519(bytes(15), (H,))
    assert info.value.message == "a SLIP-10 seed is 16 to 64 bytes, not 15"


# ---------------------------------------------------------------- the key

def test_same_seed_same_key_and_each_index_its_own(alice):
    again = IdentityKey.from_seed(W.seed("alice"))
    assert again.public_key == alice.public_key and len(alice.public_key) == 32
    assert alice.public_hex == alice.public_key.hex()
    assert alice.path == "m/1668246628h/0h/0h" and alice.index == 0
    others = {IdentityKey.from_seed(W.seed("alice"), i).public_key for i in (1, 2, 3)}
    assert len(others) == 3 and alice.public_key not in others
    assert IdentityKey.from_seed(W.seed("bob")).public_key != alice.public_key


def test_the_bip39_passphrase_gives_another_identity(alice):
    with_phrase = SeedKey.from_mnemonic(Secret(W.mnemonic("alice")), Secret("TREZOR"))
    assert IdentityKey.from_seed(with_phrase).public_key != alice.public_key


def test_the_identity_is_not_the_bitcoin_key_at_the_same_path(alice):
    from embit import bip32

    root: bip32.HDKey = W.seed("alice").root.reveal()
    bitcoin_key = root.derive(list(identity_path(0))).key.serialize()
    assert bitcoin_key[:32] != bytes.fromhex(private_hex(W.seed("alice")))


def test_fingerprint_is_the_first_8_bytes_of_sha256_in_groups_of_4(alice):
    digest = hashlib.sha256(alice.public_key).hexdigest()
    assert alice.fingerprint == f"{digest[0:4]}-{digest[4:8]}-{digest[8:12]}-{digest[12:16]}"
    assert fingerprint_of(alice.public_key) == alice.fingerprint
    assert fingerprint_of(bytes(32)) == "6668-7aad-f862-bd77"  # SHA-256 of 32 zero bytes: 66687aadf862bd77...


@pytest.mark.parametrize("key,size", [(bytes(31), "31"), (bytes(33), "33"), ("00" * 32, "str")])
def test_fingerprint_of_a_wrong_size_key_is_refused(key, size):
    with pytest.raises(BadInput) as info:
        fingerprint_of(key)
    assert info.value.message == f"an Ed25519 identity public key is 32 bytes, not {size}"


def test_a_seed_without_bip39_bytes_is_a_secret_problem():
    bare = SeedKey(root=W.seed("alice").root, fingerprint=W.seed("alice").fingerprint, seed=None)
    with pytest.raises(SecretProblem) as info:
        IdentityKey.from_seed(bare)
    assert info.value.message == "this seed carries no BIP-39 seed bytes to derive an identity key from"


def test_from_private_refuses_a_wrong_size_key():
    with pytest.raises(SecretProblem) as info:
        IdentityKey.from_private(Secret(bytes(31)))
    assert info.value.message == "an Ed25519 private key is 32 bytes"


# ---------------------------------------------------------------- signing

def test_sign_and_verify(alice):
    signature = alice.sign("approval/v1", MESSAGE)
    assert len(signature) == 64
    assert alice.sign("approval/v1", MESSAGE) == signature  # Ed25519 is deterministic
    assert verify(alice.public_key, "approval/v1", MESSAGE, signature) is True


def test_the_signature_covers_the_domain_tagged_bytes(alice):
    from nacl.signing import VerifyKey

    signature = alice.sign("ceremony-log/v1", MESSAGE)
    assert signed_message("ceremony-log/v1", MESSAGE) == b"coldsign/ceremony-log/v1\x00" + MESSAGE
    VerifyKey(alice.public_key).verify(b"coldsign/ceremony-log/v1\x00" + MESSAGE, signature)  # raises if not
    from nacl.exceptions import BadSignatureError
    with pytest.raises(BadSignatureError):
        VerifyKey(alice.public_key).verify(MESSAGE, signature)  # never a signature of the bare message


def test_what_does_not_verify(alice):
    signature = alice.sign("approval/v1", MESSAGE)
    bob = IdentityKey.from_seed(W.seed("bob"))
    flipped = bytes([signature[0] ^ 1]) + signature[1:]
    assert verify(alice.public_key, "approval/v1", MESSAGE + b"!", signature) is False
    assert verify(alice.public_key, "ceremony-log/v1", MESSAGE, signature) is False
    assert verify(bob.public_key, "approval/v1", MESSAGE, signature) is False
    assert verify(alice.public_key, "approval/v1", MESSAGE, flipped) is False
    assert verify(alice.public_key, "approval/v1", MESSAGE, signature[:63]) is False
    assert verify(alice.public_key, "approval/v1", MESSAGE, signature + b"\0") is False
    assert verify(alice.public_key, "approval/v1", MESSAGE, bytes(64)) is False


def test_a_tag_cannot_be_shifted_into_the_message(alice):
    signature = alice.sign("approval", b"/v1\x00" + MESSAGE)
    assert verify(alice.public_key, "approval", b"/v1\x00" + MESSAGE, signature)
    assert not verify(alice.public_key, "approval/v1", MESSAGE, signature)


@pytest.mark.parametrize("domain", ["", "Approval", "approval v1", "approval\x00", "/approval", "a" * 65, "é"])
def test_bad_domains_are_refused(alice, domain):
    with pytest.raises(BadInput) as info:
        alice.sign(domain, MESSAGE)
    assert info.value.message == (f"signature domain {domain!r} is not a short lower-case tag such as "
                                  "'approval/v1'")


def test_verify_refuses_a_wrong_size_public_key(alice):
    with pytest.raises(BadInput) as info:
        verify(alice.public_key[:31], "approval/v1", MESSAGE, alice.sign("approval/v1", MESSAGE))
    assert info.value.message == "an Ed25519 identity public key is 32 bytes, not 31"


def test_the_message_must_be_bytes(alice):
    with pytest.raises(TypeError):
        alice.sign("approval/v1", "text")  # type: ignore[arg-type]


# ---------------------------------------------------------------- no secret shown

def test_repr_shows_the_fingerprint_only(alice):
    secret = private_hex(W.seed("alice"))
    for text in (repr(alice), str(alice), f"{alice}", repr([alice]), repr(alice.__dict__)):
        assert alice.fingerprint in text or "Secret(<redacted>)" in text
        assert secret not in text
    assert repr(alice) == f"IdentityKey(fingerprint={alice.fingerprint}, index=0)"
    assert repr(alice._private) == "Secret(<redacted>)"


def test_an_identity_key_cannot_be_pickled(alice):
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(alice)
