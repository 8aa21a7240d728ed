"""BSMS (BIP-129) records made and read by coldsign, with the walletkit cosigners.

Fixture: alice, bob and carol (tests/walletkit.py: BIP-39 words of entropy 0x01/0x02/0x03 * 16, no
passphrase) each write a round-1 key record for their BIP-48 multisig account m/48h/1h/0h/2h on
regtest; the coordinator's round-2 record is walletkit's 2-of-3 `wsh(sortedmulti)` vault. The
STANDARD token is 0x0102030405060708, the EXTENDED one 16 bytes of 0xab.
"""

from __future__ import annotations

import pytest

import walletkit as W
from coldsign.errors import BadInput, DescriptorError, Refused, VerificationFailed
from coldsign.keys.export import account_key_expression
from coldsign.network import Network
from coldsign.wallet import bsms

PATH = W.ACCOUNT_PATHS["wsh-sortedmulti"]
STANDARD = "0102030405060708"
EXTENDED = "ab" * 16


@pytest.fixture(scope="module")
def vault():
    return W.wallet("wsh-sortedmulti")


@pytest.mark.parametrize("name", W.COSIGNERS)
def test_signer_record_round_trip(name):
    seed = W.seed(name)
    text = bsms.signer_record(seed, PATH, Network.REGTEST, description=f"{name} at the vault")
    lines = text.splitlines()
    assert text.endswith("\n") and len(lines) == 5
    assert lines[:2] == ["BSMS 1.0", "00"]
    assert lines[2] == account_key_expression(seed, PATH, Network.REGTEST, multipath=False)
    record = bsms.parse_signer_record(text)
    assert record.origin.fingerprint == seed.fingerprint and record.origin.path == PATH
    assert record.extended_key == lines[2].split("]")[1] and record.extended_key.startswith("tpub")
    assert record.description == f"{name} at the vault" and record.token == "00"
    # deterministic (RFC 6979): the same inputs give the same record
    assert bsms.signer_record(seed, PATH, Network.REGTEST, description=f"{name} at the vault") == text


def test_signer_record_signature_is_bound_to_key_and_text():
    text = bsms.signer_record(W.seed("alice"), PATH, Network.REGTEST, description="alice")
    bob_key = account_key_expression(W.seed("bob"), PATH, Network.REGTEST, multipath=False)
    lines = text.splitlines()
    swapped = "\n".join(lines[:2] + [bob_key] + lines[3:])
    with pytest.raises(VerificationFailed) as err:
        bsms.parse_signer_record(swapped)
    assert err.value.code == "bsms-bad-signature"
    assert err.value.message.startswith("line 5 (SIG): the signature was not made by the record's KEY")


@pytest.mark.parametrize("token", [STANDARD, EXTENDED])
def test_encrypted_signer_record(token):
    seed = W.seed("bob")
    data = bsms.signer_record(seed, PATH, Network.REGTEST, token=token, description="bob")
    assert all(c in "0123456789abcdef" for c in data.strip())
    record = bsms.parse_signer_record(data, token=token)
    assert record.token == token and record.origin.fingerprint == seed.fingerprint
    plain = bsms.signer_record(seed, PATH, Network.REGTEST, token=token, description="bob", encrypt=False)
    assert bsms.decrypt_record(data, token) == plain.rstrip("\n")
    with pytest.raises(BadInput) as err:
        bsms.parse_signer_record(data)
    assert err.value.message == "this BSMS key record is encrypted; its TOKEN is needed to read it"
    with pytest.raises(VerificationFailed) as err:
        bsms.parse_signer_record(data, token="ff" * 8)
    assert err.value.code == "bsms-mac-mismatch"


def test_a_flipped_ciphertext_byte_fails_the_mac():
    data = bsms.signer_record(W.seed("bob"), PATH, Network.REGTEST, token=STANDARD).strip()
    flipped = data[:-2] + format(int(data[-2:], 16) ^ 1, "02x")
    with pytest.raises(VerificationFailed) as err:
        bsms.decrypt_record(flipped, STANDARD)
    assert err.value.code == "bsms-mac-mismatch"


def test_record_token_must_be_the_session_token():
    plain = bsms.signer_record(W.seed("bob"), PATH, Network.REGTEST, token=STANDARD, encrypt=False)
    lines = plain.splitlines()
    lines[1] = "1112131415161718"
    # encrypted under the session token, but its TOKEN line names another session
    data = bsms.encrypt_record("\n".join(lines), STANDARD)
    with pytest.raises(VerificationFailed) as err:
        bsms.parse_signer_record(data, token=STANDARD)
    assert err.value.message == "line 2 (TOKEN): the record's TOKEN is not this session's TOKEN"


@pytest.mark.parametrize("change,message", [
    (lambda l: ["BSMS 2.0"] + l[1:], "line 1: unsupported version 'BSMS 2.0', coldsign reads 'BSMS 1.0'"),
    (lambda l: l[:4], "a BSMS key record has 5 lines, this one has 4"),
    (lambda l: l[:1] + ["0"] + l[2:], "line 2 (TOKEN): 00 or 16 or 32 lowercase hex digits expected"),
    (lambda l: l[:2] + [l[2].split("]")[1]] + l[3:], "line 3 (KEY): the key has no origin [fingerprint/path]"),
    (lambda l: l[:2] + [l[2] + "/0/*"] + l[3:],
     "line 3 (KEY): a key record's KEY has no derivation steps after the key"),
    (lambda l: l[:3] + ["x" * 81] + l[4:], "line 4 (description): at most 80 characters, got 81"),
    (lambda l: l[:4] + ["not*base64"], "line 5 (SIG): not base64"),
    (lambda l: l[:4] + ["AAAA"], "line 5 (SIG): not a 65-byte Bitcoin signed-message signature"),
])
def test_malformed_signer_records_name_the_line(change, message):
    lines = bsms.signer_record(W.seed("alice"), PATH, Network.REGTEST, description="alice").splitlines()
    with pytest.raises(BadInput) as err:
        bsms.parse_signer_record("\n".join(change(lines)))
    assert type(err.value) is BadInput
    assert err.value.message == message


def test_not_a_record_and_size_limit():
    with pytest.raises(BadInput) as err:
        bsms.parse_signer_record("hello\nworld")
    assert err.value.message == "line 1: a BSMS key record starts with 'BSMS 1.0'"
    with pytest.raises(BadInput) as err:
        bsms.parse_descriptor_record("BSMS 1.0\n" + "x" * bsms.BSMS_MAX_CHARS, Network.REGTEST)
    assert err.value.message == f"the BSMS descriptor record is longer than the limit of {bsms.BSMS_MAX_CHARS} characters"


@pytest.mark.parametrize("bad", ["0", "0x00", "abc", "0102030405060708aa", "G" * 16])
def test_token_shapes(bad):
    with pytest.raises(BadInput) as err:
        bsms.check_token(bad)
    assert err.value.message.startswith("a BSMS TOKEN is 00 (no encryption) or 16 or 32 hex digits")


def test_empty_description_round_trips():
    text = bsms.signer_record(W.seed("carol"), PATH, Network.REGTEST)
    assert text.splitlines()[3] == "" and bsms.parse_signer_record(text).description == ""


def test_description_is_one_line_of_at_most_80():
    with pytest.raises(BadInput) as err:
        bsms.signer_record(W.seed("alice"), PATH, Network.REGTEST, description="two\nlines")
    assert err.value.message == "description: one line only"


def test_descriptor_record_round_trip(vault):
    text = bsms.descriptor_record(vault)
    lines = text.splitlines()
    assert lines[0] == "BSMS 1.0" and lines[2] == "/0/*,/1/*" and lines[3] == vault.address(0, 0)
    assert lines[1].count("/**") == 3 and "#" not in lines[1]
    record = bsms.parse_descriptor_record(text, Network.REGTEST)
    assert record.descriptor == vault
    assert record.to_json() == {"version": "BSMS 1.0", "path_restrictions": "/0/*,/1/*",
                                "first_address": vault.address(0, 0), "first_address_checked": True}


def test_encrypted_descriptor_record_round_trip(vault):
    data = bsms.descriptor_record(vault, token=EXTENDED)
    assert bsms.parse_descriptor_record(data, Network.REGTEST, token=EXTENDED).descriptor == vault


def test_first_address_mismatch_is_refused_naming_both(vault):
    lines = bsms.descriptor_record(vault).splitlines()
    other = vault.address(0, 1)
    lines[3] = other
    with pytest.raises(Refused) as err:
        bsms.parse_descriptor_record("\n".join(lines), Network.REGTEST)
    assert err.value.code == "first-address-mismatch"
    assert err.value.message == (f"first address mismatch: the record says {other}, "
                                 f"the descriptor derives {vault.address(0, 0)}")


def test_a_swapped_key_changes_the_first_address(vault):
    """The attack BIP-129's first address defends against: a key replaced in the template."""
    lines = bsms.descriptor_record(vault).splitlines()
    carol = account_key_expression(W.seed("carol"), PATH, Network.REGTEST, multipath=False)
    mallory = account_key_expression(W.seed("carol"), (48 | W.H, 1 | W.H, 1 | W.H, 2 | W.H), Network.REGTEST,
                                     multipath=False)
    lines[1] = lines[1].replace(carol, mallory)
    with pytest.raises(Refused):
        bsms.parse_descriptor_record("\n".join(lines), Network.REGTEST)


def test_multipath_descriptor_without_restrictions_is_accepted(vault):
    text = "\n".join(["BSMS 1.0", vault.canonical(), "No path restrictions", vault.address(0, 0)])
    assert bsms.parse_descriptor_record(text, Network.REGTEST).descriptor == vault


@pytest.mark.parametrize("line2,line3,error,message", [
    ("TEMPLATE", "/0/*", BadInput, "line 3: unsupported path restrictions '/0/*'"),
    ("TEMPLATE", "No path restrictions", BadInput,
     "line 3: a descriptor template (/**) needs path restrictions, but the record says 'No path restrictions'"),
    ("CANONICAL", "/0/*,/1/*", BadInput,
     "line 2: path restrictions are given but the descriptor has no /** template"),
    ("TEMPLATE#qqqqqqqq", "/0/*,/1/*", DescriptorError, "line 2: template checksum mismatch"),
])
def test_malformed_descriptor_records(vault, line2, line3, error, message):
    lines = bsms.descriptor_record(vault).splitlines()
    lines[1] = line2.replace("TEMPLATE", lines[1]).replace("CANONICAL", vault.canonical())
    lines[2] = line3
    with pytest.raises(error) as err:
        bsms.parse_descriptor_record("\n".join(lines), Network.REGTEST)
    assert err.value.message.startswith(message)


def test_template_checksum_is_checked_when_present(vault):
    from coldsign.wallet.scriptexpr import descriptor_checksum

    lines = bsms.descriptor_record(vault).splitlines()
    lines[1] = f"{lines[1]}#{descriptor_checksum(lines[1])}"
    assert bsms.parse_descriptor_record("\n".join(lines), Network.REGTEST).descriptor == vault


def test_is_bsms_text(vault):
    assert bsms.is_bsms_text(bsms.descriptor_record(vault))
    assert bsms.is_bsms_text(bsms.descriptor_record(vault, token=STANDARD))
    assert not bsms.is_bsms_text(vault.canonical())
    assert not bsms.is_bsms_text("Name: x\nPolicy: 2 of 3\n")


def test_decimal_token_sizes():
    assert bsms.token_from_decimal("0") == "00"
    assert bsms.token_from_decimal(str(2**64 - 1)) == "ff" * 8
    assert bsms.token_from_decimal(str(2**64)) == "00000000000000010000000000000000"
    with pytest.raises(BadInput) as err:
        bsms.token_from_decimal(str(2**128))
    assert err.value.message == "a decimal BSMS TOKEN must be below 2^128"


def test_a_plain_record_where_the_session_has_a_token_is_not_authenticated(vault):
    """With a TOKEN the MAC is what shows a record is the coordinator's. A plain record handed over in
    its place (anyone can write one, with a first address that matches its own descriptor) used to be
    read as if the token had been checked."""
    plain = bsms.descriptor_record(vault)
    with pytest.raises(VerificationFailed) as err:
        bsms.parse_descriptor_record(plain, Network.REGTEST, token=STANDARD)
    assert err.value.code == "bsms-not-encrypted"
    assert err.value.message == ("this BSMS descriptor record is not encrypted, but this session has a TOKEN: "
                                 "nothing shows it comes from the coordinator")
    key_record = bsms.signer_record(W.seed("bob"), PATH, Network.REGTEST, token=STANDARD, encrypt=False)
    with pytest.raises(VerificationFailed) as err:
        bsms.parse_signer_record(key_record, token=STANDARD)
    assert err.value.code == "bsms-not-encrypted"
    # TOKEN 00 is the no-encryption session: a plain record is what it expects
    assert bsms.parse_descriptor_record(plain, Network.REGTEST, token="00").descriptor == vault
