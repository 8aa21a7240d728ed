"""BIP-129 (BSMS) official test vectors (tests/vectors/bsms/README.md names the source).

For every mode of the BIP: each key record's signature verifies against its KEY and is re-created
byte for byte from the listed private key (RFC 6979 nonces); each `.dat` decrypts with its TOKEN
into exactly the plain record and re-encrypts into exactly the `.dat`; the ENCRYPTION_KEY and
HMAC_KEY derive from the TOKEN as listed. The two `wsh(sortedmulti)` xpub wallets (NO_ENCRYPTION,
STANDARD) register on mainnet with their first address checked, also from the encrypted record;
the plain-key wallet and the `sh(wsh(multi))` one are refused as unsupported, by class and message.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from embit import ec

from coldsign.errors import BadInput, DescriptorError, VerificationFailed
from coldsign.network import Network
from coldsign.wallet import bsms

HERE = Path(__file__).parent / "bsms"
VECTORS = json.loads((HERE / "vectors.json").read_text())["modes"]
SIGNERS = [(mode, signer) for mode, data in VECTORS.items() for signer in data["signers"]]
ENCRYPTED_SIGNERS = [(mode, s) for mode, s in SIGNERS if "encrypted" in s]


def token_of(mode: str, signer: dict) -> str:
    return signer.get("token") or VECTORS[mode]["token"]


@pytest.mark.parametrize("mode,signer", SIGNERS, ids=lambda v: v if isinstance(v, str) else v["record"])
def test_key_record_signature_verifies_and_reproduces(mode, signer):
    text = (HERE / mode / signer["record"]).read_text()
    record = bsms.parse_signer_record(text)
    assert record.origin.fingerprint.hex() == signer["fingerprint"]
    assert record.token == token_of(mode, signer)
    expected_pub = signer.get("public_key")
    if expected_pub is None:
        assert record.extended_key == signer["xpub"]
    else:
        assert record.pubkey.hex() == expected_pub and record.extended_key is None
    lines = text.splitlines()
    secret = ec.PrivateKey.from_wif(signer["private_key_wif"]).secret
    made = bsms.sign_key_record(lines[2], secret, token=lines[1], description=lines[3])
    assert made == text.rstrip("\n")


@pytest.mark.parametrize("mode,signer", SIGNERS[:3], ids=lambda v: v if isinstance(v, str) else v["record"])
def test_key_record_with_a_changed_description_fails_verification(mode, signer):
    lines = (HERE / mode / signer["record"]).read_text().splitlines()
    lines[3] = lines[3] + "!"
    with pytest.raises(VerificationFailed) as err:
        bsms.parse_signer_record("\n".join(lines))
    assert err.value.message == ("line 5 (SIG): the signature was not made by the record's KEY "
                                 "over its first four lines")


@pytest.mark.parametrize("mode,signer", ENCRYPTED_SIGNERS, ids=lambda v: v if isinstance(v, str) else v["record"])
def test_encrypted_key_records_decrypt_and_reencrypt_exactly(mode, signer):
    token = token_of(mode, signer)
    data = (HERE / mode / signer["encrypted"]).read_text().strip()
    plain = (HERE / mode / signer["record"]).read_text()
    assert data[:64] == signer["mac"]
    assert bsms.decrypt_record(data, token) == plain.rstrip("\n")
    assert bsms.encrypt_record(plain, token) == data
    assert bsms.parse_signer_record(data, token=token).origin.fingerprint.hex() == signer["fingerprint"]


@pytest.mark.parametrize("token,key,hmac_key", [
    (VECTORS["standard"]["token"], VECTORS["standard"]["encryption_key"], VECTORS["standard"]["hmac_key"]),
    *[(s["token"], s["encryption_key"], s["hmac_key"]) for s in VECTORS["extended"]["signers"]],
])
def test_encryption_key_and_hmac_key_from_token(token, key, hmac_key):
    derived = bsms.encryption_key(token)
    assert derived.hex() == key
    assert hashlib.sha256(derived).hexdigest() == hmac_key


@pytest.mark.parametrize("decimal,token", [
    (VECTORS["standard"]["token_decimal"], VECTORS["standard"]["token"]),
    *[(s["token_decimal"], s["token"]) for s in VECTORS["extended"]["signers"]],
])
def test_decimal_tokens(decimal, token):
    assert bsms.token_from_decimal(decimal) == token


@pytest.mark.parametrize("mode", ["no_encryption", "standard"])
def test_descriptor_records_register_with_first_address_checked(mode):
    record = bsms.parse_descriptor_record((HERE / mode / "my_multisig_wallet.bsms").read_text(), Network.MAIN)
    assert record.first_address == VECTORS[mode]["first_address"]
    assert record.descriptor.address(0, 0) == VECTORS[mode]["first_address"]
    assert record.descriptor.kind == "wsh-sortedmulti"
    assert record.descriptor.threshold == VECTORS[mode]["m_of_n"][0]
    assert len(record.descriptor.keys) == VECTORS[mode]["m_of_n"][1]
    fingerprints = [k.origin.fingerprint.hex() for k in record.descriptor.keys]
    assert fingerprints == [s["fingerprint"] for s in VECTORS[mode]["signers"]]
    assert record.path_restrictions == "/0/*,/1/*"


def test_encrypted_descriptor_record_standard_mode():
    (name, token), = VECTORS["standard"]["descriptor_record_encrypted"].items()
    data = (HERE / "standard" / name).read_text()
    record = bsms.parse_descriptor_record(data, Network.MAIN, token=token)
    assert record.first_address == VECTORS["standard"]["first_address"]
    plain = (HERE / "standard" / "my_multisig_wallet.bsms").read_text()
    assert bsms.encrypt_record(plain, token) == data.strip()


@pytest.mark.parametrize("name,token", VECTORS["extended"]["descriptor_record_encrypted"].items())
def test_extended_mode_records_decrypt_but_sh_wsh_is_refused(name, token):
    data = (HERE / "extended" / name).read_text()
    plain = (HERE / "extended" / "my_multisig_wallet.bsms").read_text()
    assert bsms.decrypt_record(data, token) == plain.rstrip("\n")
    assert bsms.encrypt_record(plain, token) == data.strip()
    with pytest.raises(DescriptorError) as err:
        bsms.parse_descriptor_record(data, Network.MAIN, token=token)
    assert err.value.message == "line 2: unsupported descriptor: sh(wsh(...))"


def test_extended_record_with_another_signers_token_fails_the_mac():
    names = list(VECTORS["extended"]["descriptor_record_encrypted"])
    data = (HERE / "extended" / names[0]).read_text()
    other = VECTORS["extended"]["descriptor_record_encrypted"][names[1]]
    with pytest.raises(VerificationFailed) as err:
        bsms.parse_descriptor_record(data, Network.MAIN, token=other)
    assert err.value.message == ("the encrypted BSMS record's MAC does not match: wrong TOKEN, "
                                 "or the record was changed")


def test_plain_key_wallet_is_refused_as_not_a_ranged_xpub_wallet():
    text = (HERE / "pubkeys" / "my_multisig_wallet.bsms").read_text()
    with pytest.raises(DescriptorError) as err:
        bsms.parse_descriptor_record(text, Network.MAIN)
    assert err.value.message == "line 2: key 1 must end in /<0;1>/*"


def test_mainnet_record_on_regtest_is_refused():
    text = (HERE / "no_encryption" / "my_multisig_wallet.bsms").read_text()
    with pytest.raises(BadInput) as err:
        bsms.parse_descriptor_record(text, Network.REGTEST)
    assert err.value.message == "line 2: key 1 is an xpub (main) key but the network is regtest"
