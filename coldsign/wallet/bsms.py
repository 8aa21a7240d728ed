"""Bitcoin Secure Multisig Setup (BIP-129): key records, descriptor records, their encryption.

Round 1: each signer hands the coordinator a *key record* — `BSMS 1.0`, the TOKEN (hex), the
KEY `[fingerprint/path]xpub`, a description (at most 80 characters) and SIG, a Bitcoin
signed-message signature (BIP-137 "legacy" format, which BIP-129 accepts) over the first four
lines made with the private key of KEY. Round 2: the coordinator hands every signer a
*descriptor record* — `BSMS 1.0`, a descriptor or a `/**` template, the path restrictions
(`/0/*,/1/*` or `No path restrictions`) and the wallet's first address, which the signer
derives itself and compares before it stores anything.

With a TOKEN other than `00` a record travels encrypted: ENCRYPTION_KEY = PBKDF2-HMAC-SHA512
("No SPOF", salt TOKEN, 2048 rounds, 32 bytes), MAC = HMAC-SHA256(SHA256(ENCRYPTION_KEY),
hex TOKEN || record), IV = MAC[:16], AES-256-CTR; sent as hex(MAC || ciphertext). The record
inside is the text without a final newline (that is what the BIP's vectors encrypt).

coldsign supports what its wallets are: descriptor records whose keys are xpubs with origins
and whose restrictions are receive `/0/*` and change `/1/*` (or a `/<0;1>/*` descriptor with no
restrictions), of the kinds `WalletDescriptor` supports (`wsh(sortedmulti)`, `wsh(multi)`, ...).
Pure: no I/O. embit's libsecp256k1 binding signs and recovers; pycryptodome does AES-CTR.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from coldsign.errors import BadInput, DescriptorError, Refused, VerificationFailed
from coldsign.limits import LIMITS
from coldsign.network import Network
from coldsign.wallet.descriptor import WalletDescriptor

if TYPE_CHECKING:
    from coldsign.keys.seed import SeedKey
    from coldsign.wallet.keyexpr import KeyOrigin

BSMS_VERSION = "BSMS 1.0"
NO_ENCRYPTION = "00"
NO_PATH_RESTRICTIONS = "No path restrictions"
WALLET_PATH_RESTRICTIONS = "/0/*,/1/*"
TEMPLATE_WILDCARD = "/**"
DESCRIPTION_MAX_CHARS = 80
# A 15-key descriptor record is ~2,000 characters; encrypted it doubles. 64 KiB bounds a hostile file.
BSMS_MAX_CHARS = LIMITS.wallet_setup_file_max_bytes
# The key derivation of BIP-129 "Encryption": PBKDF2 with PRF = SHA512.
PBKDF2_PASSWORD = b"No SPOF"
PBKDF2_ITERATIONS = 2048
ENCRYPTION_KEY_BYTES = 32
MAC_BYTES = 32
_TOKEN = re.compile(r"(00|[0-9a-f]{16}|[0-9a-f]{32})\Z")
_HEX = re.compile(r"[0-9a-fA-F]+\Z")
_MESSAGE_MAGIC = b"\x18Bitcoin Signed Message:\n"


# ---------------------------------------------------------------- records

@dataclass(frozen=True)
class SignerRecord:
    """A verified round-1 key record. `key` is the KEY line as written; `pubkey` its SEC key."""

    token: str
    key: str
    origin: "KeyOrigin"
    pubkey: bytes
    extended_key: str | None  # the xpub/tpub of KEY, None when KEY is a plain public key
    description: str
    signature: str
    version: str = BSMS_VERSION


@dataclass(frozen=True)
class DescriptorRecord:
    """A verified round-2 descriptor record: the wallet it describes, its first address checked."""

    descriptor: WalletDescriptor
    template: str
    path_restrictions: str
    first_address: str
    version: str = BSMS_VERSION

    def to_json(self) -> dict:
        return {"version": self.version, "path_restrictions": self.path_restrictions,
                "first_address": self.first_address, "first_address_checked": True}


def check_token(token: str) -> str:
    """The TOKEN as a record writes it: `00`, or 16 (STANDARD) or 32 (EXTENDED) lowercase hex digits."""
    normalized = (token or "").strip().lower()
    if not _TOKEN.match(normalized):
        raise BadInput(f"a BSMS TOKEN is 00 (no encryption) or 16 or 32 hex digits, got {len(normalized)} characters",
                       hint="use the TOKEN the coordinator gave, in hex")
    return normalized


def token_from_decimal(text: str) -> str:
    """The hex TOKEN of a decimal one (BIP-129 recommends showing tokens as decimal numbers):
    up to 2^64-1 is a STANDARD 64-bit token, above that an EXTENDED 128-bit one."""
    text = text.strip()
    # NOTE: str.isdigit() is also true of "²" and other non-ASCII digits, which int() rejects
    if not (text.isascii() and text.isdigit()) or len(text) > 39:
        raise BadInput("a decimal BSMS TOKEN is a number of at most 39 digits")
    value = int(text)
    if value == 0:
        return NO_ENCRYPTION
    if value < 1 << 64:
        return value.to_bytes(8, "big").hex()
    if value < 1 << 128:
        return value.to_bytes(16, "big").hex()
    raise BadInput("a decimal BSMS TOKEN must be below 2^128")


def signer_record(seed: "SeedKey", path: tuple[int, ...], network: Network, *, token: str = NO_ENCRYPTION,
                  description: str = "", encrypt: bool = True) -> str:
    """The round-1 key record of this seed's account at `path`, signed with that account's key.

    With TOKEN `00` the record text (newline-terminated); with another TOKEN and `encrypt`, the
    hex `MAC || ciphertext` the coordinator expects (newline-terminated).
    """
    from coldsign.keys.export import account_key_expression

    key = account_key_expression(seed, tuple(path), network, multipath=False)
    secret = seed.root.reveal().derive(list(path)).key.secret
    record = sign_key_record(key, secret, token=token, description=description)
    token = check_token(token)
    if token != NO_ENCRYPTION and encrypt:
        return encrypt_record(record, token) + "\n"
    return record + "\n"


def sign_key_record(key: str, secret: bytes, *, token: str = NO_ENCRYPTION, description: str = "") -> str:
    """The five lines of a key record for KEY `key` (`[fp/path]xpub` or `[fp/path]pubkey`) signed
    with its 32-byte private key `secret` (RFC 6979 nonce, so the same inputs give the same SIG).
    No final newline: this is the text that encryption covers."""
    from embit.util import secp256k1

    token = check_token(token)
    description = _check_description(description, where="description")
    body = "\n".join([BSMS_VERSION, token, key, description])
    recoverable = secp256k1.ecdsa_sign_recoverable(_message_hash(body), secret)
    compact, recid = secp256k1.ecdsa_recoverable_signature_serialize_compact(recoverable)
    # Header 31..34: recovery id of a compressed key (BIP-137 "P2PKH compressed").
    signature = base64.b64encode(bytes([31 + recid]) + compact).decode()
    return f"{body}\n{signature}"


def parse_signer_record(text: str, *, token: str | None = None) -> SignerRecord:
    """Read and verify a round-1 key record (plain, or encrypted with `token`).

    Malformed: BadInput naming the line. A signature that is not KEY's: VerificationFailed.
    """
    from coldsign.wallet.keyexpr import parse_key_expression

    lines = _record_lines(text, token, expected=5, what="key record")
    given_token = _line_token(lines[1], token)
    try:
        expr = parse_key_expression(lines[2], where="KEY")
    except DescriptorError as e:
        raise BadInput(f"line 3 (KEY): {e.message}") from None
    if expr.origin is None:
        raise BadInput("line 3 (KEY): the key has no origin [fingerprint/path]",
                       hint="BIP-129 keys are written [fingerprint/path]KEY")
    if expr.steps:
        raise BadInput("line 3 (KEY): a key record's KEY has no derivation steps after the key")
    description = _check_description(lines[3], where="line 4 (description)")
    pubkey = expr.pubkey_at()
    _verify_message("\n".join(lines[:4]), lines[4], pubkey)
    extended = expr.key.to_base58() if expr.is_extended else None
    return SignerRecord(token=given_token, key=lines[2], origin=expr.origin, pubkey=pubkey,
                        extended_key=extended, description=description, signature=lines[4])


def descriptor_record(descriptor: WalletDescriptor, *, token: str = NO_ENCRYPTION) -> str:
    """The round-2 record of a registered wallet: its `/**` template, `/0/*,/1/*`, the first
    receive address. Encrypted (hex MAC || ciphertext) when `token` is not `00`."""
    token = check_token(token)
    body = descriptor.canonical().split("#")[0].replace("/<0;1>/*", TEMPLATE_WILDCARD)
    record = "\n".join([BSMS_VERSION, body, WALLET_PATH_RESTRICTIONS, descriptor.address(0, 0)])
    if token != NO_ENCRYPTION:
        return encrypt_record(record, token) + "\n"
    return record + "\n"


def parse_descriptor_record(text: str, network: Network, *, token: str | None = None) -> DescriptorRecord:
    """Read a round-2 descriptor record into a wallet and check its first address.

    Malformed or unsupported: BadInput/DescriptorError (exit 3) naming the line. A first address
    other than the one the descriptor derives: Refused (exit 4) naming both addresses.
    """
    from coldsign.wallet.scriptexpr import descriptor_checksum, split_checksum

    lines = _record_lines(text, token, expected=4, what="descriptor record")
    template, restrictions, first_address = lines[1].strip(), lines[2].strip(), lines[3].strip()
    has_template = TEMPLATE_WILDCARD in template
    if restrictions == NO_PATH_RESTRICTIONS:
        if has_template:
            raise BadInput("line 3: a descriptor template (/**) needs path restrictions, "
                           f"but the record says {NO_PATH_RESTRICTIONS!r}")
        concrete = template
    elif restrictions.replace(" ", "") == WALLET_PATH_RESTRICTIONS:
        if not has_template:
            raise BadInput("line 2: path restrictions are given but the descriptor has no /** template")
        body, given = template.partition("#")[0], template.partition("#")[2]
        if given and given != descriptor_checksum(body):
            raise DescriptorError(f"line 2: template checksum mismatch: got #{given}, "
                                  f"expected #{descriptor_checksum(body)}")
        concrete = body.replace(TEMPLATE_WILDCARD, "/<0;1>/*")
    else:
        raise BadInput(f"line 3: unsupported path restrictions {restrictions[:60]!r}",
                       hint=f"coldsign wallets use receive and change branches: {WALLET_PATH_RESTRICTIONS}")
    try:
        split_checksum(concrete)
        wallet = WalletDescriptor.parse(concrete, network)
    except DescriptorError as e:
        hint = e.hint
        if "must end in" in e.message:
            hint = (f"coldsign registers xpub wallets with a /** template and {WALLET_PATH_RESTRICTIONS} "
                    "restrictions (or /<0;1>/* keys)")
        raise DescriptorError(f"line 2: {e.message}", hint=hint) from None
    derived = wallet.address(0, 0)
    if first_address != derived:
        raise Refused(f"first address mismatch: the record says {first_address}, "
                      f"the descriptor derives {derived}", code="first-address-mismatch",
                      hint="the record was changed or is for another wallet; do not use it, "
                           "ask the coordinator and the other signers to compare")
    return DescriptorRecord(descriptor=wallet, template=template, path_restrictions=restrictions,
                            first_address=first_address)


def is_bsms_text(text: str) -> bool:
    """True for a plain record (`BSMS ` first) or what looks like an encrypted one (hex only)."""
    stripped = text.strip()
    return stripped.startswith("BSMS ") or (len(stripped) > 2 * MAC_BYTES and bool(_HEX.match(stripped)))


# ---------------------------------------------------------------- encryption (BIP-129 "Encryption")

def encryption_key(token: str) -> bytes:
    """ENCRYPTION_KEY = PBKDF2-HMAC-SHA512("No SPOF", salt = TOKEN bytes, 2048, 32 bytes)."""
    token = check_token(token)
    return hashlib.pbkdf2_hmac("sha512", PBKDF2_PASSWORD, bytes.fromhex(token), PBKDF2_ITERATIONS,
                               ENCRYPTION_KEY_BYTES)


def _mac(key: bytes, token: str, plaintext: bytes) -> bytes:
    return hmac.new(hashlib.sha256(key).digest(), token.encode() + plaintext, "sha256").digest()


def _ctr(key: bytes, iv: bytes, data: bytes) -> bytes:
    from Crypto.Cipher import AES

    return AES.new(key, AES.MODE_CTR, nonce=b"", initial_value=iv).encrypt(data)


def encrypt_record(record: str, token: str) -> str:
    """hex(MAC || AES-256-CTR(record)) with IV = MAC[:16]; `record` without its final newline."""
    token = check_token(token)
    if token == NO_ENCRYPTION:
        raise BadInput("TOKEN 00 means no encryption; there is nothing to encrypt with")
    key = encryption_key(token)
    plaintext = record.rstrip("\n").encode()
    mac = _mac(key, token, plaintext)
    return (mac + _ctr(key, mac[:16], plaintext)).hex()


def decrypt_record(data: str, token: str) -> str:
    """The record inside hex(MAC || ciphertext); VerificationFailed when the MAC does not match
    (a wrong TOKEN, or the data was changed)."""
    token = check_token(token)
    if token == NO_ENCRYPTION:
        raise BadInput("this BSMS record is encrypted but the TOKEN given is 00",
                       hint="give the TOKEN the coordinator shared for this setup session")
    data = data.strip()
    if not _HEX.match(data) or len(data) % 2 or len(data) <= 2 * MAC_BYTES:
        raise BadInput("an encrypted BSMS record is hex: a 32-byte MAC then the ciphertext")
    raw = bytes.fromhex(data)
    mac, ciphertext = raw[:MAC_BYTES], raw[MAC_BYTES:]
    key = encryption_key(token)
    plaintext = _ctr(key, mac[:16], ciphertext)
    if not hmac.compare_digest(_mac(key, token, plaintext), mac):
        raise VerificationFailed("the encrypted BSMS record's MAC does not match: wrong TOKEN, "
                                 "or the record was changed", code="bsms-mac-mismatch",
                                 hint="check the TOKEN with the coordinator; do not use this record")
    try:
        return plaintext.decode("utf-8")
    except UnicodeDecodeError:
        raise BadInput("the decrypted BSMS record is not UTF-8 text") from None


# ---------------------------------------------------------------- helpers

def _record_lines(text: str, token: str | None, *, expected: int, what: str) -> list[str]:
    if len(text) > BSMS_MAX_CHARS:
        raise BadInput(f"the BSMS {what} is longer than the limit of {BSMS_MAX_CHARS} characters")
    stripped = text.strip()
    if stripped.startswith("BSMS ") and token is not None and check_token(token) != NO_ENCRYPTION:
        # NOTE: the TOKEN's MAC is what proves the record is the coordinator's; a plain record in its
        # place (anyone can write one, first address and all) must not be taken as if it had passed
        raise VerificationFailed(f"this BSMS {what} is not encrypted, but this session has a TOKEN: "
                                 "nothing shows it comes from the coordinator", code="bsms-not-encrypted",
                                 hint="ask the coordinator for the record encrypted with this session's TOKEN; "
                                      "do not use this one")
    if not stripped.startswith("BSMS "):
        if not _HEX.match(stripped):
            raise BadInput(f"line 1: a BSMS {what} starts with {BSMS_VERSION!r}",
                           hint="check that this is a BIP-129 file")
        if token is None:
            raise BadInput(f"this BSMS {what} is encrypted; its TOKEN is needed to read it",
                           hint="give the TOKEN the coordinator shared (--token-file)")
        stripped = decrypt_record(stripped, token).strip()
    lines = stripped.replace("\r\n", "\n").split("\n")
    if lines[0].strip() != BSMS_VERSION:
        raise BadInput(f"line 1: unsupported version {lines[0].strip()[:40]!r}, coldsign reads {BSMS_VERSION!r}")
    if len(lines) != expected:
        raise BadInput(f"a BSMS {what} has {expected} lines, this one has {len(lines)}")
    return lines


def _line_token(line: str, session_token: str | None) -> str:
    if not _TOKEN.match(line.strip()):
        raise BadInput("line 2 (TOKEN): 00 or 16 or 32 lowercase hex digits expected")
    if session_token is not None and line.strip() != check_token(session_token):
        raise VerificationFailed("line 2 (TOKEN): the record's TOKEN is not this session's TOKEN",
                                 code="bsms-token-mismatch")
    return line.strip()


def _check_description(text: str, *, where: str) -> str:
    if "\n" in text or "\r" in text:
        raise BadInput(f"{where}: one line only")
    if len(text) > DESCRIPTION_MAX_CHARS:
        raise BadInput(f"{where}: at most {DESCRIPTION_MAX_CHARS} characters, got {len(text)}")
    return text


def _compact_size(n: int) -> bytes:
    if n < 0xFD:
        return bytes([n])
    if n <= 0xFFFF:
        return b"\xfd" + n.to_bytes(2, "little")
    return b"\xfe" + n.to_bytes(4, "little")


def _message_hash(message: str) -> bytes:
    """The Bitcoin signed-message digest: SHA256d(magic || compact_size(len) || message)."""
    data = message.encode()
    return hashlib.sha256(hashlib.sha256(_MESSAGE_MAGIC + _compact_size(len(data)) + data).digest()).digest()


def _verify_message(message: str, signature: str, pubkey: bytes) -> None:
    """Check a BIP-137 (legacy) signature by recovering its key and comparing with `pubkey`."""
    from embit.util import secp256k1

    try:
        raw = base64.b64decode(signature.strip(), validate=True)
    except ValueError:
        raise BadInput("line 5 (SIG): not base64") from None
    if len(raw) != 65 or not 27 <= raw[0] <= 42:
        raise BadInput("line 5 (SIG): not a 65-byte Bitcoin signed-message signature",
                       hint="coldsign verifies the legacy (BIP-137) format that BIP-129 accepts; "
                            "BIP-322 full signatures are not supported")
    try:
        recoverable = secp256k1.ecdsa_recoverable_signature_parse_compact(raw[1:], (raw[0] - 27) & 3)
        point = secp256k1.ecdsa_recover(recoverable, _message_hash(message))
        recovered = secp256k1.ec_pubkey_serialize(point)
    except ValueError:
        recovered = None
    if recovered != pubkey:
        raise VerificationFailed("line 5 (SIG): the signature was not made by the record's KEY "
                                 "over its first four lines", code="bsms-bad-signature",
                                 hint="the record was changed or signed with another key; ask the signer again")
