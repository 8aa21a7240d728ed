"""A custodian's identity key: Ed25519, derived from the BIP-39 seed with SLIP-10.

It signs what a custodian vouches for (policy approvals, ceremony-log entries) so an auditor can
check who did what against the roster (`coldsign.keys.roster`). Deriving it from the seed means
the same word backup that restores the Bitcoin keys restores the identity: nothing else to keep.

The path: ``m/1668246628h/0h/<index>h`` (every step hardened; SLIP-10 Ed25519 has no other kind).

- ``1668246628`` is ``0x636f6c64``, the ASCII bytes of "cold", read as a big-endian integer, in the
  manner of BIP-85's ``83696968`` ("SEED"). It is far from every BIP-43 purpose used for coins (44,
  45, 48, 49, 84, 86, 87) and from SLIP-13's 13 (SSH/GPG identities), SLIP-17's 17 and Cardano's 1852,
  so no wallet or other identity scheme on the same seed will ever use this subtree.
- ``0h`` is the key's use: 0 = custodian identity. Other uses get other numbers, never this one.
- ``<index>h`` lets a custodian rotate the identity (a suspected leak of this key alone, a new role)
  without a new seed: index 0 first, then 1, 2, ... The roster records the index.

SLIP-10 starts Ed25519 from HMAC-SHA512 keyed with "ed25519 seed", not BIP-32's "Bitcoin seed", so
this tree shares nothing with the secp256k1 keys even at equal paths; the distinct purpose is there
so the path says what the key is for, and so no other tool's Ed25519 keys (e.g. SLIP-13) coincide.

Fingerprint: the first 8 bytes of SHA-256(public key), as lower-case hex in four groups of four
("3f2a-09bc-71de-4c05"). 64 bits is enough for people to compare aloud during a ceremony and for
an accidental collision among a roster's handful of keys to be out of the question; the full public
key is what verification uses.

Domain separation: every signature is over ``b"coldsign/" + domain + b"\\0" + message``, never over
the caller's bytes alone, so an approval can never be replayed as a log entry or anything else this
key signs. `domain` is a short tag such as "approval/v1" or "ceremony-log/v1" (lower-case ASCII
letters, digits and ``-./_``, no NUL, so the tag and the message cannot run into each other).

Pure: no I/O. bip-utils and PyNaCl are imported inside the functions that need them.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

from coldsign.errors import BadInput, SecretProblem
from coldsign.keys.secret import Secret
from coldsign.keys.seed import SeedKey

HARDENED = 0x80000000
IDENTITY_PURPOSE = 0x636F6C64  # "cold" in ASCII = 1668246628
IDENTITY_USE = 0               # 0 = custodian identity
MAX_INDEX = HARDENED - 1
PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64
FINGERPRINT_BYTES = 8
DOMAIN_PREFIX = b"coldsign/"
DOMAIN_PATTERN = re.compile(r"[a-z0-9][a-z0-9./_-]{0,63}")
FINGERPRINT_PATTERN = re.compile(r"[0-9a-f]{4}(?:-[0-9a-f]{4}){3}")


def identity_path(index: int = 0) -> tuple[int, ...]:
    """The SLIP-10 path of identity key `index`, as hardened integers."""
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index <= MAX_INDEX:
        raise BadInput(f"identity index must be a whole number from 0 to {MAX_INDEX}, not {index!r}",
                       code="identity-index")
    return (IDENTITY_PURPOSE | HARDENED, IDENTITY_USE | HARDENED, index | HARDENED)


def format_identity_path(index: int = 0) -> str:
    """``m/1668246628h/0h/<index>h``: hardened steps written with h, as `coldsign.keys.derive` does."""
    return "m/" + "/".join(f"{step & ~HARDENED}h" for step in identity_path(index))


def fingerprint_of(public_key: bytes) -> str:
    """The short, human-checkable fingerprint of an identity public key ("xxxx-xxxx-xxxx-xxxx")."""
    _check_public_key(public_key)
    digest = hashlib.sha256(public_key).digest()[:FINGERPRINT_BYTES].hex()
    return "-".join(digest[i:i + 4] for i in range(0, len(digest), 4))


def signed_message(domain: str, message: bytes) -> bytes:
    """The exact bytes an identity signature covers: ``b"coldsign/" + domain + b"\\0" + message``."""
    if not isinstance(domain, str) or not DOMAIN_PATTERN.fullmatch(domain):
        raise BadInput(f"signature domain {domain!r} is not a short lower-case tag such as 'approval/v1'",
                       code="identity-domain")
    if not isinstance(message, (bytes, bytearray)):
        raise TypeError("the message to sign must be bytes")
    return DOMAIN_PREFIX + domain.encode("ascii") + b"\0" + bytes(message)


def verify(public_key: bytes, domain: str, message: bytes, signature: bytes) -> bool:
    """True when `signature` is `public_key`'s Ed25519 signature of `message` under `domain`.

    A signature of the wrong length, by another key, over other bytes or under another domain is
    False. A public key that is not 32 bytes is a caller's data problem: BadInput.
    """
    from nacl.exceptions import BadSignatureError
    from nacl.signing import VerifyKey

    _check_public_key(public_key)
    data = signed_message(domain, message)
    if not isinstance(signature, (bytes, bytearray)) or len(signature) != SIGNATURE_BYTES:
        return False
    try:
        VerifyKey(bytes(public_key)).verify(data, bytes(signature))
    except BadSignatureError:
        return False
    return True


def _check_public_key(public_key: bytes) -> None:
    if not isinstance(public_key, (bytes, bytearray)) or len(public_key) != PUBLIC_KEY_BYTES:
        size = len(public_key) if isinstance(public_key, (bytes, bytearray)) else type(public_key).__name__
        raise BadInput(f"an Ed25519 identity public key is {PUBLIC_KEY_BYTES} bytes, not {size}",
                       code="identity-key")


@dataclass(frozen=True, repr=False)
class IdentityKey:
    """A custodian's Ed25519 identity key. Its repr shows only the fingerprint and index."""

    public_key: bytes
    index: int
    _private: Secret = field(compare=False)  # the 32-byte SLIP-10 Ed25519 private key (the RFC 8032 seed)

    @classmethod
    def from_seed(cls, seed: SeedKey, index: int = 0) -> "IdentityKey":
        """Identity key `index` of the seed (its 64-byte BIP-39 seed, with any passphrase applied)."""
        path = identity_path(index)
        if seed.seed is None:
            raise SecretProblem("this seed carries no BIP-39 seed bytes to derive an identity key from",
                                code="identity-no-seed", hint="load the seed from its words or keystore")
        private, _chain_code = slip10_ed25519(seed.seed.reveal(), path)
        return cls.from_private(private, index)

    @classmethod
    def from_private(cls, private: Secret, index: int = 0) -> "IdentityKey":
        """An identity key from its 32-byte Ed25519 private key (held in a Secret)."""
        from nacl.signing import SigningKey

        raw = private.reveal()
        if not isinstance(raw, bytes) or len(raw) != 32:
            raise SecretProblem("an Ed25519 private key is 32 bytes", code="identity-private-key")
        public = bytes(SigningKey(raw).verify_key)
        return cls(public_key=public, index=index, _private=private)

    @property
    def public_hex(self) -> str:
        return self.public_key.hex()

    @property
    def fingerprint(self) -> str:
        return fingerprint_of(self.public_key)

    @property
    def path(self) -> str:
        return format_identity_path(self.index)

    def sign(self, domain: str, message: bytes) -> bytes:
        """The 64-byte Ed25519 signature of `message` under `domain` (see the module docstring)."""
        from nacl.signing import SigningKey

        data = signed_message(domain, message)
        return SigningKey(self._private.reveal()).sign(data).signature

    def __repr__(self) -> str:
        return f"IdentityKey(fingerprint={self.fingerprint}, index={self.index})"

    __str__ = __repr__

    def __reduce__(self):  # NOTE: holds a private key; never pickle it into a file or another process
        raise TypeError("an IdentityKey cannot be pickled")


def slip10_ed25519(seed: bytes, path: tuple[int, ...]) -> tuple[Secret, bytes]:
    """(private key, chain code) of the SLIP-10 Ed25519 node at `path` (hardened integers) below `seed`.

    bip-utils does the derivation; tests/vectors/test_slip10.py holds it to the SLIP-0010 vectors.
    """
    from bip_utils import Bip32Slip10Ed25519

    if not 16 <= len(seed) <= 64:
        raise BadInput(f"a SLIP-10 seed is 16 to 64 bytes, not {len(seed)}", code="identity-seed")
    if any(not HARDENED <= step <= 0xFFFFFFFF for step in path):
        raise BadInput("SLIP-10 Ed25519 derives hardened steps only", code="identity-path")
    node = Bip32Slip10Ed25519.FromSeed(seed)
    for step in path:
        node = node.ChildKey(step)
    return Secret(node.PrivateKey().Raw().ToBytes()), node.ChainCode().ToBytes()
