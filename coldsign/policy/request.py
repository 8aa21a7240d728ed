"""Signing requests and approvals, and the bundle file that carries them with the PSBT.

The coordinator wraps a PSBT in a `SigningRequest` (coldsign.policy.model): the SHA-256 of the
PSBT's binary serialization, the wallet, a 128-bit random nonce, created/expires times (UTC,
seconds), the chain tip it saw, and its requester's Ed25519 identity key. Approvers review the
PSBT and sign the same request digest. Everything travels in one JSON **bundle**:

    {"format": "coldsign-request-bundle", "version": 1,
     "request": {"psbt_sha256", "wallet", "nonce", "created", "expires", "tip_height",
                 "tip_hash", "requester" (hex), "memo"},
     "requester_signature": hex, "approvals": [{"approver": hex, "signature": hex}],
     "psbt": base64 of the PSBT's binary serialization}

Digest: SHA-256 of ``b"coldsign/request/v1\\0"`` + canonical JSON of the request's fields (sorted
keys, no spaces, UTF-8, the requester as lower-case hex). The requester signs it under domain
"request/v1", approvers under "approval/v1" (coldsign.keys.identity adds its own "coldsign/"
domain prefix), so neither signature can stand in for the other or for anything else the key signs.

`decode_bundle` is strict (python-tuf style): bounded size, no unknown or missing fields, no
duplicate JSON keys, exact hex lengths, times in one form (``2025-01-31T14:05:09Z``), a PSBT that
parses and re-serializes to the same bytes, no approver twice. Every problem is a BadInput naming
the field. Verifying signatures is a separate step (`verify_bundle`) so a bundle with a bad
signature can still be read and reported on.

Pure: no I/O, no clock (callers pass `now`), no randomness except `new_nonce`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import secrets
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from coldsign.canonical import canonical_json
from coldsign.errors import BadInput, PSBTDecodeError, Refused, VerificationFailed
from coldsign.limits import LIMITS
from coldsign.policy.model import Approval, Bundle, SigningRequest

if TYPE_CHECKING:
    from coldsign.keys.identity import IdentityKey

BUNDLE_FORMAT = "coldsign-request-bundle"
BUNDLE_VERSION = 1
DIGEST_PREFIX = b"coldsign/request/v1\0"
REQUEST_DOMAIN = "request/v1"
APPROVAL_DOMAIN = "approval/v1"

# NOTE: hard limits of this module. The bundle carries the PSBT in base64 (4/3 of its size), so
# its limit follows the PSBT's, plus room for the request (coldsign.limits).
BUNDLE_MAX_BYTES = LIMITS.request_bundle_max_bytes
MAX_APPROVALS = 100
MEMO_MAX_CHARS = 500
MAX_LIFETIME_SECONDS = 90 * 86_400      # a request valid for longer than 90 days is a mistake
MAX_TIP_HEIGHT = 100_000_000

TIME_PATTERN = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\Z")
WALLET_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")   # as coldsign.wallet.registry names wallets
DURATION_PATTERN = re.compile(r"(\d{1,7})([smhd])\Z")
_UNITS = {"s": 1, "m": 60, "h": 3_600, "d": 86_400}

_TOP_FIELDS = ("format", "version", "request", "requester_signature", "approvals", "psbt")
_REQUEST_FIELDS = tuple(SigningRequest.__dataclass_fields__)
_APPROVAL_FIELDS = ("approver", "signature")


# --- times -------------------------------------------------------------------------------------

def format_time(moment: datetime) -> str:
    """UTC, seconds precision: ``2025-01-31T14:05:09Z``."""
    if moment.tzinfo is None:
        raise ValueError("a request time must be timezone-aware")
    return moment.astimezone(timezone.utc).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: Any, *, field: str = "time") -> datetime:
    """The UTC datetime of ``YYYY-MM-DDTHH:MM:SSZ`` (the only form requests use); BadInput naming `field`."""
    if not isinstance(text, str) or not TIME_PATTERN.match(text):
        raise _bad(f"{field}: {str(text)[:40]!r} is not a UTC time of the form 2025-01-31T14:05:09Z")
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    except ValueError:
        raise _bad(f"{field}: {text!r} is not a real date and time") from None


def parse_duration(text: str) -> int:
    """Seconds of "90s", "30m", "2h", "7d" (a request's lifetime); BadInput otherwise."""
    match = DURATION_PATTERN.match(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise BadInput(f"{text!r} is not a duration such as 30m, 2h or 7d", code="bad-duration")
    seconds = int(match.group(1)) * _UNITS[match.group(2)]
    if not 60 <= seconds <= MAX_LIFETIME_SECONDS:
        raise BadInput(f"a request lifetime of {text} is outside 1 minute to {MAX_LIFETIME_SECONDS // 86_400} days",
                       code="bad-duration")
    return seconds


def is_expired(request: SigningRequest, now: datetime, skew_seconds: int = 0) -> bool:
    """True once `now` is past the request's expiry plus `skew_seconds`."""
    return now > parse_time(request.expires, field="request.expires") + timedelta(seconds=skew_seconds)


# --- the request and its digest ------------------------------------------------------------------

def new_nonce() -> str:
    """128 random bits as 32 lower-case hex digits."""
    return secrets.token_hex(16)


def psbt_digest(psbt_bytes: bytes) -> str:
    """Hex SHA-256 of the PSBT bytes exactly as the bundle carries them (binary serialization)."""
    return hashlib.sha256(psbt_bytes).hexdigest()


def new_request(psbt_bytes: bytes, *, wallet: str, requester: bytes, now: datetime, lifetime_seconds: int,
                tip_height: int, tip_hash: str, memo: str = "", nonce: str | None = None) -> SigningRequest:
    """A request for `psbt_bytes` (binary PSBT) created at `now`, expiring `lifetime_seconds` later.
    Every field is checked as `decode_bundle` would check it."""
    request = SigningRequest(psbt_sha256=psbt_digest(psbt_bytes), wallet=wallet, nonce=nonce or new_nonce(),
                             created=format_time(now),
                             expires=format_time(now + timedelta(seconds=lifetime_seconds)),
                             tip_height=tip_height, tip_hash=tip_hash, requester=bytes(requester), memo=memo)
    return _request_from_json(request_to_json(request))


def request_to_json(request: SigningRequest) -> dict:
    """The request's fields as JSON values (the requester as lower-case hex)."""
    doc = asdict(request)
    doc["requester"] = request.requester.hex()
    return doc


def request_digest(request: SigningRequest) -> bytes:
    """SHA-256 of b"coldsign/request/v1\\0" + canonical JSON of the request: what the requester and
    every approver sign."""
    return hashlib.sha256(DIGEST_PREFIX + canonical_json(request_to_json(request))).digest()


# --- signatures ----------------------------------------------------------------------------------

def sign_request(request: SigningRequest, key: "IdentityKey") -> Bundle:
    """The requester's signed bundle without approvals and without the PSBT bytes (see `bundle_of`)."""
    if key.public_key != request.requester:
        raise BadInput("the request names another requester than this identity key", code="wrong-requester")
    return Bundle(request=request, requester_signature=key.sign(REQUEST_DOMAIN, request_digest(request)),
                  approvals=(), psbt=b"")


def bundle_of(request: SigningRequest, key: "IdentityKey", psbt_bytes: bytes) -> Bundle:
    """The bundle the coordinator sends: the request signed by `key`, with the PSBT it names."""
    if psbt_digest(psbt_bytes) != request.psbt_sha256:
        raise BadInput("the PSBT is not the one the request names", code="psbt-mismatch")
    return replace(sign_request(request, key), psbt=bytes(psbt_bytes))


def sign_approval(request: SigningRequest, key: "IdentityKey") -> Approval:
    return Approval(approver=key.public_key, signature=key.sign(APPROVAL_DOMAIN, request_digest(request)))


def requester_signature_valid(bundle: Bundle) -> bool:
    from coldsign.keys.identity import verify

    return verify(bundle.request.requester, REQUEST_DOMAIN, request_digest(bundle.request),
                  bundle.requester_signature)


def approval_valid(request: SigningRequest, approval: Approval) -> bool:
    from coldsign.keys.identity import verify

    return verify(approval.approver, APPROVAL_DOMAIN, request_digest(request), approval.signature)


def psbt_matches(bundle: Bundle) -> bool:
    """True when the bundle's PSBT bytes hash to the request's psbt_sha256."""
    return psbt_digest(bundle.psbt) == bundle.request.psbt_sha256


@dataclass(frozen=True)
class BundleVerification:
    """Each signature of a bundle and the PSBT hash, checked. `approvals` is (approval, valid) in order."""

    requester_ok: bool
    psbt_ok: bool
    approvals: tuple[tuple[Approval, bool], ...]

    @property
    def ok(self) -> bool:
        return self.requester_ok and self.psbt_ok and all(valid for _, valid in self.approvals)

    @property
    def valid_approvers(self) -> tuple[bytes, ...]:
        """Public keys of the approvals whose signatures verify (each key once)."""
        return tuple(dict.fromkeys(a.approver for a, valid in self.approvals if valid))

    def problems(self) -> list[str]:
        found = []
        if not self.requester_ok:
            found.append("the requester's signature does not verify (the request was changed or signed by another key)")
        if not self.psbt_ok:
            found.append("the PSBT's SHA-256 is not the one the request names (the PSBT was changed)")
        found += [f"approval {i} by {a.approver.hex()[:16]}… does not verify"
                  for i, (a, valid) in enumerate(self.approvals) if not valid]
        return found


def verify_bundle(bundle: Bundle) -> BundleVerification:
    return BundleVerification(requester_ok=requester_signature_valid(bundle), psbt_ok=psbt_matches(bundle),
                              approvals=tuple((a, approval_valid(bundle.request, a)) for a in bundle.approvals))


def require_authentic(bundle: Bundle) -> None:
    """VerificationFailed unless the requester's signature verifies and the PSBT is the one named."""
    problems = []
    if not requester_signature_valid(bundle):
        problems.append({"code": "bad-requester-signature",
                         "message": "the requester's signature does not verify over this request"})
    if not psbt_matches(bundle):
        problems.append({"code": "psbt-mismatch", "message": f"the PSBT hashes to {psbt_digest(bundle.psbt)}, "
                         f"the request names {bundle.request.psbt_sha256}"})
    if problems:
        raise VerificationFailed("the request bundle is not authentic: " + "; ".join(p["message"] for p in problems),
                                 code=problems[0]["code"], details=problems,
                                 hint="do not approve it; ask the coordinator for the original bundle")


def approve(bundle: Bundle, key: "IdentityKey", now: datetime | None = None) -> tuple[Bundle, bool]:
    """(bundle with `key`'s approval, added?). The requester's signature and the PSBT hash must hold
    (VerificationFailed); an expired request is refused (when `now` is given). A key that already
    approved validly adds nothing; an invalid approval by the same key is replaced."""
    require_authentic(bundle)
    if now is not None and is_expired(bundle.request, now):
        raise Refused(f"the request expired at {bundle.request.expires}; nothing was approved",
                      code="request-expired", hint="ask the coordinator for a new request")
    mine = [a for a in bundle.approvals if a.approver == key.public_key]
    if any(approval_valid(bundle.request, a) for a in mine):
        return bundle, False
    if len(bundle.approvals) - len(mine) >= MAX_APPROVALS:
        raise BadInput(f"the bundle already carries {MAX_APPROVALS} approvals", code="too-many-approvals")
    others = tuple(a for a in bundle.approvals if a.approver != key.public_key)
    return replace(bundle, approvals=others + (sign_approval(bundle.request, key),)), True


# --- the bundle file -------------------------------------------------------------------------------

def bundle_to_json(bundle: Bundle) -> dict:
    return {"format": BUNDLE_FORMAT, "version": BUNDLE_VERSION, "request": request_to_json(bundle.request),
            "requester_signature": bundle.requester_signature.hex(),
            "approvals": [{"approver": a.approver.hex(), "signature": a.signature.hex()} for a in bundle.approvals],
            "psbt": base64.b64encode(bundle.psbt).decode("ascii")}


def encode_bundle(bundle: Bundle) -> bytes:
    """The bundle file's bytes: canonical JSON and a newline (the same bundle, the same bytes)."""
    return canonical_json(bundle_to_json(bundle)) + b"\n"


def decode_bundle(data: bytes) -> Bundle:
    """The bundle in `data` (see the module docstring), checked strictly; BadInput naming the field."""
    if len(data) > BUNDLE_MAX_BYTES:
        raise _bad(f"the bundle is {len(data)} bytes, more than the limit of {BUNDLE_MAX_BYTES}")
    try:
        doc = json.loads(bytes(data).decode("utf-8"), object_pairs_hook=_no_duplicates,
                         parse_constant=_no_constant)
    except UnicodeDecodeError:
        raise _bad("the bundle is not UTF-8 text") from None
    except ValueError as err:   # json.JSONDecodeError and the hooks' errors
        raise _bad(f"the bundle is not valid JSON: {err}") from None
    _exact_fields(doc, _TOP_FIELDS, "bundle")
    if doc["format"] != BUNDLE_FORMAT:
        raise _bad(f"format: {str(doc['format'])[:60]!r} is not {BUNDLE_FORMAT!r}")
    if type(doc["version"]) is not int or doc["version"] != BUNDLE_VERSION:
        raise _bad(f"version: {str(doc['version'])[:20]} is not supported (this coldsign reads version "
                   f"{BUNDLE_VERSION})")
    request = _request_from_json(doc["request"])
    signature = _hex(doc["requester_signature"], 64, "requester_signature")
    approvals = doc["approvals"]
    if not isinstance(approvals, list):
        raise _bad("approvals: must be a list")
    if len(approvals) > MAX_APPROVALS:
        raise _bad(f"approvals: {len(approvals)} approvals, more than the limit of {MAX_APPROVALS}")
    parsed: list[Approval] = []
    for i, item in enumerate(approvals):
        _exact_fields(item, _APPROVAL_FIELDS, f"approvals[{i}]")
        approval = Approval(approver=_hex(item["approver"], 32, f"approvals[{i}].approver"),
                            signature=_hex(item["signature"], 64, f"approvals[{i}].signature"))
        if any(p.approver == approval.approver for p in parsed):
            raise _bad(f"approvals[{i}].approver: this key already approved (approvals may not repeat a key)")
        parsed.append(approval)
    return Bundle(request=request, requester_signature=signature, approvals=tuple(parsed),
                  psbt=_psbt_bytes(doc["psbt"]))


def _request_from_json(doc: Any) -> SigningRequest:
    _exact_fields(doc, _REQUEST_FIELDS, "request")
    sha = _hex(doc["psbt_sha256"], 32, "request.psbt_sha256").hex()
    wallet = doc["wallet"]
    if not isinstance(wallet, str) or not WALLET_PATTERN.match(wallet):
        raise _bad(f"request.wallet: {str(wallet)[:80]!r} is not a wallet name (1 to 64 letters, digits, '_' or '-')")
    nonce = _hex(doc["nonce"], 16, "request.nonce").hex()
    created = parse_time(doc["created"], field="request.created")
    expires = parse_time(doc["expires"], field="request.expires")
    if expires <= created:
        raise _bad(f"request.expires: {doc['expires']} is not after request.created {doc['created']}")
    if (expires - created).total_seconds() > MAX_LIFETIME_SECONDS:
        raise _bad(f"request.expires: the request is valid for more than {MAX_LIFETIME_SECONDS // 86_400} days")
    height = doc["tip_height"]
    if type(height) is not int or not 0 <= height <= MAX_TIP_HEIGHT:
        raise _bad(f"request.tip_height: {str(height)[:20]} is not a block height (a whole number from 0 "
                   f"to {MAX_TIP_HEIGHT})")
    tip_hash = _hex(doc["tip_hash"], 32, "request.tip_hash").hex()
    requester = _hex(doc["requester"], 32, "request.requester")
    memo = doc["memo"]
    if not isinstance(memo, str) or len(memo) > MEMO_MAX_CHARS:
        raise _bad(f"request.memo: must be text of at most {MEMO_MAX_CHARS} characters")
    if any(not ch.isprintable() for ch in memo):
        raise _bad("request.memo: control characters are not allowed (they could hide text on a terminal)")
    return SigningRequest(psbt_sha256=sha, wallet=wallet, nonce=nonce, created=doc["created"],
                          expires=doc["expires"], tip_height=height, tip_hash=tip_hash, requester=requester,
                          memo=memo)


def _psbt_bytes(text: Any) -> bytes:
    from coldsign.psbt.codec import Psbt

    if not isinstance(text, str):
        raise _bad("psbt: must be base64 text")
    if len(text) > (LIMITS.psbt_max_bytes + 2) // 3 * 4:
        raise _bad(f"psbt: more than the PSBT limit of {LIMITS.psbt_max_bytes} bytes")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise _bad("psbt: not valid base64") from None
    try:
        psbt = Psbt.parse(raw)
    except PSBTDecodeError as err:
        raise _bad(f"psbt: {err.message}") from None
    if psbt.serialize() != raw:
        raise _bad("psbt: not in the PSBT's own serialization (it does not re-serialize to the same bytes)")
    return raw


def _hex(value: Any, size: int, field: str) -> bytes:
    if not isinstance(value, str) or len(value) != 2 * size or not re.fullmatch(r"[0-9a-f]*", value):
        shown = repr(value[:20]) + ("…" if len(value) > 20 else "") if isinstance(value, str) else type(value).__name__
        raise _bad(f"{field}: must be {2 * size} lower-case hex digits ({size} bytes), not {shown}")
    return bytes.fromhex(value)


def _exact_fields(doc: Any, names: tuple[str, ...], where: str) -> None:
    if not isinstance(doc, dict):
        raise _bad(f"{where}: must be a JSON object")
    unknown = sorted(set(doc) - set(names))
    if unknown:
        raise _bad(f"{where}: unknown field {unknown[0][:40]!r}")
    missing = [n for n in names if n not in doc]
    if missing:
        raise _bad(f"{where}: missing field {missing[0]!r}")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict:
    doc: dict = {}
    for key, value in pairs:
        if key in doc:
            raise ValueError(f"duplicate key {key[:40]!r}")
        doc[key] = value
    return doc


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _bad(message: str) -> BadInput:
    return BadInput(message, code="bad-bundle", hint="ask the coordinator for the bundle again")
