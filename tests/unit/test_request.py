"""Signing requests and bundles (coldsign.policy.request), pure.

Fixture, in words: the PSBT is walletkit's honest wpkh withdrawal (alice's wallet, coins at 0/0
and 0/1 of 100,000 sat, 150,000 sat out, change to 1/0). The requester is carol's identity key
(index 0); approvers are alice's and bob's identity keys. The request is created at
2025-01-31T14:00:00Z, valid 2 hours, for chain tip 840000 / 00..0a.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import fields, replace
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import walletkit
from coldsign.errors import BadInput, Refused, VerificationFailed
from coldsign.keys.identity import IdentityKey
from coldsign.policy import request as R
from coldsign.policy.model import Approval, SigningRequest

NOW = datetime(2025, 1, 31, 14, 0, 0, tzinfo=timezone.utc)
TIP_HASH = "00" * 31 + "0a"


@pytest.fixture(scope="module")
def keys() -> dict[str, IdentityKey]:
    return {name: IdentityKey.from_seed(walletkit.seed(name), 0) for name in walletkit.COSIGNERS}


@pytest.fixture(scope="module")
def psbt_bytes() -> bytes:
    _wallet, psbt = walletkit.honest("wpkh")
    return psbt.serialize()


@pytest.fixture(scope="module")
def request_(keys, psbt_bytes) -> SigningRequest:
    return R.new_request(psbt_bytes, wallet="vault", requester=keys["carol"].public_key, now=NOW,
                         lifetime_seconds=7200, tip_height=840_000, tip_hash=TIP_HASH, memo="exchange top-up",
                         nonce="0123456789abcdef" * 2)


@pytest.fixture(scope="module")
def bundle(request_, keys, psbt_bytes):
    return R.bundle_of(request_, keys["carol"], psbt_bytes)


# --- the request and its digest ---------------------------------------------------------------------

def test_new_request_fields(request_, psbt_bytes, keys):
    assert request_.psbt_sha256 == hashlib.sha256(psbt_bytes).hexdigest()
    assert request_.created == "2025-01-31T14:00:00Z"
    assert request_.expires == "2025-01-31T16:00:00Z"
    assert request_.requester == keys["carol"].public_key


def test_fresh_nonces_are_128_bits_and_differ():
    nonces = {R.new_nonce() for _ in range(50)}
    assert len(nonces) == 50
    assert all(len(n) == 32 and int(n, 16) >= 0 and n == n.lower() for n in nonces)


def test_digest_is_the_documented_construction(request_):
    doc = dict(vars(request_))
    doc["requester"] = request_.requester.hex()
    expected = hashlib.sha256(b"coldsign/request/v1\0" + json.dumps(
        doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()).digest()
    assert R.request_digest(request_) == expected
    assert R.request_digest(replace(request_)) == expected       # stable: equal requests, equal digests


CHANGED = {"psbt_sha256": "ff" * 32, "wallet": "other", "nonce": "ff" * 16, "created": "2025-01-31T14:00:01Z",
           "expires": "2025-01-31T16:00:01Z", "tip_height": 840_001, "tip_hash": "00" * 31 + "0b",
           "requester": b"\x01" * 32, "memo": "exchange top-up!"}


def test_every_field_is_covered_by_the_test_table():
    assert set(CHANGED) == {f.name for f in fields(SigningRequest)}


@pytest.mark.parametrize("field", sorted(CHANGED))
def test_digest_changes_with_every_field(request_, field):
    assert R.request_digest(replace(request_, **{field: CHANGED[field]})) != R.request_digest(request_)


def test_digest_of_unicode_memo_is_utf8(request_):
    a = replace(request_, memo="café")
    b = replace(request_, memo="cafe\u0301")   # same look, other code points: another request
    assert R.request_digest(a) != R.request_digest(b)


# --- signatures ---------------------------------------------------------------------------------------

def test_bundle_verifies(bundle):
    checked = R.verify_bundle(bundle)
    assert checked.ok and checked.requester_ok and checked.psbt_ok and checked.approvals == ()


def test_requester_signature_is_domain_separated(bundle, keys):
    """The requester's signature is not an approval: the same bytes under approval/v1 do not verify."""
    as_approval = Approval(bundle.request.requester, bundle.requester_signature)
    assert not R.approval_valid(bundle.request, as_approval)
    approval = R.sign_approval(bundle.request, keys["carol"])
    assert not R.requester_signature_valid(replace(bundle, requester_signature=approval.signature))


@pytest.mark.parametrize("field", sorted(set(CHANGED) - {"requester"}))
def test_tampered_request_field_is_detected(bundle, field):
    tampered = replace(bundle, request=replace(bundle.request, **{field: CHANGED[field]}))
    checked = R.verify_bundle(tampered)
    assert not checked.requester_ok and not checked.ok
    with pytest.raises(VerificationFailed, match="requester's signature does not verify"):
        R.require_authentic(tampered)


def test_another_requester_key_is_detected(bundle, keys):
    swapped = replace(bundle, request=replace(bundle.request, requester=keys["alice"].public_key))
    assert not R.verify_bundle(swapped).requester_ok


def test_tampered_psbt_is_detected(bundle):
    other_psbt = walletkit.honest("wpkh", fee_rate=3)[1].serialize()
    tampered = replace(bundle, psbt=other_psbt)
    checked = R.verify_bundle(tampered)
    assert checked.requester_ok and not checked.psbt_ok and not checked.ok
    with pytest.raises(VerificationFailed, match="the PSBT hashes to .*, the request names") as info:
        R.require_authentic(tampered)
    assert info.value.code == "psbt-mismatch"


def test_bundle_of_refuses_another_psbt_or_key(request_, keys):
    with pytest.raises(BadInput, match="not the one the request names"):
        R.bundle_of(request_, keys["carol"], b"psbt\xff\x00")
    with pytest.raises(BadInput, match="names another requester"):
        R.sign_request(request_, keys["alice"])


def test_approve_adds_once_per_key(bundle, keys):
    one, added = R.approve(bundle, keys["alice"], NOW)
    assert added and [a.approver for a in one.approvals] == [keys["alice"].public_key]
    same, added_again = R.approve(one, keys["alice"], NOW)
    assert not added_again and same == one
    two, added = R.approve(one, keys["bob"], NOW)
    assert added and len(two.approvals) == 2
    checked = R.verify_bundle(two)
    assert checked.ok and checked.valid_approvers == (keys["alice"].public_key, keys["bob"].public_key)


def test_approval_over_another_request_is_invalid(bundle, keys, request_):
    other = replace(request_, nonce="ff" * 16)
    foreign = R.sign_approval(other, keys["bob"])
    with_foreign = replace(bundle, approvals=(foreign,))
    checked = R.verify_bundle(with_foreign)
    assert checked.requester_ok and checked.psbt_ok and not checked.ok
    assert checked.approvals == ((foreign, False),) and checked.valid_approvers == ()
    assert checked.problems() == [f"approval 0 by {keys['bob'].public_hex[:16]}… does not verify"]


def test_approval_with_a_swapped_key_is_invalid(bundle, keys):
    good = R.sign_approval(bundle.request, keys["bob"])
    assert not R.approval_valid(bundle.request, replace(good, approver=keys["alice"].public_key))
    flipped = bytes([good.signature[0] ^ 1]) + good.signature[1:]
    assert not R.approval_valid(bundle.request, replace(good, signature=flipped))


def test_approve_replaces_an_invalid_approval_by_the_same_key(bundle, keys):
    bad = Approval(keys["bob"].public_key, bytes(64))
    fixed, added = R.approve(replace(bundle, approvals=(bad,)), keys["bob"], NOW)
    assert added and len(fixed.approvals) == 1 and R.verify_bundle(fixed).ok


def test_approve_refuses_tampered_or_expired(bundle, keys):
    with pytest.raises(VerificationFailed, match="not authentic"):
        R.approve(replace(bundle, psbt=walletkit.honest("wpkh", fee_rate=3)[1].serialize()), keys["bob"], NOW)
    with pytest.raises(Refused, match="the request expired at 2025-01-31T16:00:00Z") as info:
        R.approve(bundle, keys["bob"], NOW + timedelta(hours=2, seconds=1))
    assert info.value.code == "request-expired"


# --- times ------------------------------------------------------------------------------------------

def test_expiry_with_and_without_skew(request_):
    expires = datetime(2025, 1, 31, 16, 0, 0, tzinfo=timezone.utc)
    assert not R.is_expired(request_, expires)
    assert R.is_expired(request_, expires + timedelta(seconds=1))
    assert not R.is_expired(request_, expires + timedelta(seconds=60), skew_seconds=60)
    assert R.is_expired(request_, expires + timedelta(seconds=61), skew_seconds=60)


def test_times_parse_to_utc():
    assert R.parse_time("2024-02-29T23:59:59Z") == datetime(2024, 2, 29, 23, 59, 59, tzinfo=timezone.utc)
    assert R.format_time(datetime(2025, 1, 1, 1, 2, 3, 999_999, tzinfo=timezone(timedelta(hours=2)))) == \
        "2024-12-31T23:02:03Z"


@pytest.mark.parametrize("text, message", [
    ("2025-01-31T14:00:00+00:00", "is not a UTC time of the form 2025-01-31T14:05:09Z"),
    ("2025-01-31 14:00:00Z", "is not a UTC time of the form"),
    ("2025-01-31T14:00:00.5Z", "is not a UTC time of the form"),
    ("2025-02-30T14:00:00Z", "is not a real date and time"),
    ("2025-01-31T24:00:00Z", "is not a real date and time"),
    (1738332000, "is not a UTC time of the form"),
])
def test_bad_times(text, message):
    with pytest.raises(BadInput, match=message):
        R.parse_time(text, field="request.created")


@pytest.mark.parametrize("text, seconds", [("90s", 90), ("30m", 1800), ("2h", 7200), ("7d", 604_800),
                                           ("90d", 90 * 86_400)])
def test_durations(text, seconds):
    assert R.parse_duration(text) == seconds


@pytest.mark.parametrize("text, message", [("2 hours", "is not a duration"), ("-2h", "is not a duration"),
                                           ("1.5h", "is not a duration"), ("59s", "outside 1 minute to 90 days"),
                                           ("91d", "outside 1 minute to 90 days")])
def test_bad_durations(text, message):
    with pytest.raises(BadInput, match=message):
        R.parse_duration(text)


# --- the bundle file ------------------------------------------------------------------------------------

def test_encode_decode_round_trip(bundle, keys):
    approved = R.approve(R.approve(bundle, keys["alice"], NOW)[0], keys["bob"], NOW)[0]
    data = R.encode_bundle(approved)
    assert R.decode_bundle(data) == approved
    assert R.encode_bundle(R.decode_bundle(data)) == data        # the same bundle, the same bytes
    doc = json.loads(data)
    assert doc["format"] == "coldsign-request-bundle" and doc["version"] == 1
    assert base64.b64decode(doc["psbt"]) == approved.psbt
    assert doc["request"]["requester"] == keys["carol"].public_hex
    assert doc["approvals"][1] == {"approver": keys["bob"].public_hex, "signature": approved.approvals[1].signature.hex()}


def _mutated(bundle, change) -> bytes:
    doc = json.loads(R.encode_bundle(bundle))
    change(doc)
    return json.dumps(doc).encode()


def _set(path, value):
    def change(doc):
        target = doc
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = value
    return change


def _delete(path):
    def change(doc):
        target = doc
        for step in path[:-1]:
            target = target[step]
        del target[path[-1]]
    return change


_APPROVAL = {"approver": "ab" * 32, "signature": "cd" * 64}

INVALID = [
    (_set(["format"], "coldsign-wallet"), "format: 'coldsign-wallet' is not 'coldsign-request-bundle'"),
    (_set(["version"], 2), "version: 2 is not supported (this coldsign reads version 1)"),
    (_set(["version"], True), "version: True is not supported"),
    (_set(["extra"], 1), "bundle: unknown field 'extra'"),
    (_delete(["psbt"]), "bundle: missing field 'psbt'"),
    (_set(["request", "extra"], 1), "request: unknown field 'extra'"),
    (_delete(["request", "memo"]), "request: missing field 'memo'"),
    (_set(["request"], []), "request: must be a JSON object"),
    (_set(["request", "psbt_sha256"], "AB" * 32), "request.psbt_sha256: must be 64 lower-case hex digits (32 bytes), not 'ABABABABABABABABABAB'…"),
    (_set(["request", "nonce"], "ab" * 15), "request.nonce: must be 32 lower-case hex digits (16 bytes), not 'abababababababababab'…"),
    (_set(["request", "nonce"], 5), "request.nonce: must be 32 lower-case hex digits (16 bytes), not int"),
    (_set(["request", "tip_hash"], "zz" * 32), "request.tip_hash: must be 64 lower-case hex digits"),
    (_set(["request", "requester"], "ab" * 33), "request.requester: must be 64 lower-case hex digits"),
    (_set(["request", "wallet"], "../etc"), "request.wallet: '../etc' is not a wallet name"),
    (_set(["request", "created"], "yesterday"), "request.created: 'yesterday' is not a UTC time"),
    (_set(["request", "expires"], "2025-01-31T13:59:59Z"), "request.expires: 2025-01-31T13:59:59Z is not after request.created 2025-01-31T14:00:00Z"),
    (_set(["request", "expires"], "2025-06-30T14:00:00Z"), "request.expires: the request is valid for more than 90 days"),
    (_set(["request", "tip_height"], -1), "request.tip_height: -1 is not a block height"),
    (_set(["request", "tip_height"], 8.5), "request.tip_height: 8.5 is not a block height"),
    (_set(["request", "tip_height"], False), "request.tip_height: False is not a block height"),
    (_set(["request", "memo"], "x" * 501), "request.memo: must be text of at most 500 characters"),
    (_set(["request", "memo"], "pay\x1b[2Kthem"), "request.memo: control characters are not allowed"),
    (_set(["requester_signature"], "00" * 63), "requester_signature: must be 128 lower-case hex digits (64 bytes)"),
    (_set(["approvals"], {}), "approvals: must be a list"),
    (_set(["approvals"], [_APPROVAL] * 101), "approvals: 101 approvals, more than the limit of 100"),
    (_set(["approvals"], [{"approver": "ab" * 32}]), "approvals[0]: missing field 'signature'"),
    (_set(["approvals"], [{**_APPROVAL, "name": "x"}]), "approvals[0]: unknown field 'name'"),
    (_set(["approvals"], [{**_APPROVAL, "signature": "cd"}]), "approvals[0].signature: must be 128 lower-case hex digits"),
    (_set(["approvals"], [_APPROVAL, _APPROVAL]), "approvals[1].approver: this key already approved"),
    (_set(["psbt"], "not base64!"), "psbt: not valid base64"),
    (_set(["psbt"], 7), "psbt: must be base64 text"),
    (_set(["psbt"], base64.b64encode(b"hello").decode()), "psbt: not a PSBT: the data does not start with the magic 70736274ff"),
]


@pytest.mark.parametrize("change, message", INVALID)
def test_invalid_bundles(bundle, change, message):
    with pytest.raises(BadInput) as info:
        R.decode_bundle(_mutated(bundle, change))
    assert message in info.value.message
    assert info.value.code == "bad-bundle"


@pytest.mark.parametrize("data, message", [
    (b"\xff\xfe{}", "the bundle is not UTF-8 text"),
    (b"{\"format\": 1, \"format\": 2}", "duplicate key 'format'"),
    (b"{\"version\": NaN}", "NaN is not a JSON number"),
    (b"[1, 2", "the bundle is not valid JSON"),
    (b"[]", "bundle: must be a JSON object"),
])
def test_invalid_json(data, message):
    with pytest.raises(BadInput) as info:
        R.decode_bundle(data)
    assert message in info.value.message
    assert info.value.code == "bad-bundle"


def test_size_limit():
    with pytest.raises(BadInput) as info:
        R.decode_bundle(b" " * (R.BUNDLE_MAX_BYTES + 1))
    assert info.value.message == (f"the bundle is {R.BUNDLE_MAX_BYTES + 1} bytes, more than the limit of "
                                  f"{R.BUNDLE_MAX_BYTES}")


def test_psbt_not_in_its_own_serialization(bundle):
    """A PSBT whose bytes are not exactly what the codec writes back (here: a non-minimal compact size
    in front of a key) is refused: the signer hashes, shows and signs the same bytes."""
    raw = bundle.psbt
    # the global unsigned tx key is 01 00; re-encode its key length 0x01 as 0xfd 01 00 (non-minimal)
    assert raw[5:7] == b"\x01\x00"
    odd = raw[:5] + b"\xfd\x01\x00" + raw[6:]
    with pytest.raises(BadInput) as info:
        R.decode_bundle(_mutated(bundle, _set(["psbt"], base64.b64encode(odd).decode())))
    assert info.value.message.startswith("psbt: ")


# --- property: any change to a bundle's bytes is refused or detected ---------------------------------

@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(position=st.integers(min_value=0), byte=st.integers(min_value=0, max_value=255))
def test_a_changed_byte_never_passes_as_authentic(bundle, keys, position, byte):
    """Change one byte of an approved bundle's file: it fails to decode (BadInput, nothing else), or it
    decodes to the same bundle (e.g. a hex digit's case is refused, whitespace is the only freedom), or
    some signature or the PSBT hash no longer verifies."""
    approved = R.approve(bundle, keys["alice"], NOW)[0]
    data = bytearray(R.encode_bundle(approved))
    position %= len(data)
    if data[position] == byte:
        return
    data[position] = byte
    try:
        decoded = R.decode_bundle(bytes(data))
    except BadInput:
        return
    assert decoded == approved or not R.verify_bundle(decoded).ok
