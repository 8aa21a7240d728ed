"""Private-key derivation for signing: one hardened walk to the account, then a cheap
non-hardened step per key.

The account node is derived once with embit and checked against the registered xpub; the
two branch nodes (receive, change) are cached; each signing key is then one HMAC-SHA512 and
one modular addition (BIP-32 CKDpriv), no elliptic-curve multiplication. That keeps
per-input signing cost flat as a PSBT grows.
"""

from __future__ import annotations

import hmac
from hashlib import sha512

from coldsign.errors import Refused

# The order of the secp256k1 group.
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


class AccountSigner:
    """Private keys of one account (an origin path) of a seed. Its repr shows no secret."""

    __slots__ = ("fingerprint", "path", "_secret", "_chain_code", "_pub", "_branches")

    def __init__(self, root, fingerprint: bytes, path: tuple[int, ...], expected_xpub) -> None:
        node = root.derive(list(path)) if path else root
        if node.to_public().key.sec() != expected_xpub.key.sec() or node.chain_code != expected_xpub.chain_code:
            raise Refused("the seed does not derive the wallet's key at its origin path",
                          code="seed-not-in-wallet",
                          where=f"[{fingerprint.hex()}/{format_path(path)}]",
                          hint="use the seed this wallet was registered with (and its BIP-39 passphrase)")
        self.fingerprint = fingerprint
        self.path = path
        self._secret = int.from_bytes(node.key.secret, "big")
        self._chain_code = node.chain_code
        self._pub = node.key.sec()
        self._branches: dict[int, tuple[int, bytes, bytes]] = {}

    def __repr__(self) -> str:
        return f"AccountSigner([{self.fingerprint.hex()}/{format_path(self.path)}])"

    def _branch(self, change: int) -> tuple[int, bytes, bytes]:
        node = self._branches.get(change)
        if node is None:
            secret, chain_code = _ckd_priv(self._secret, self._chain_code, self._pub, change)
            from embit.util import secp256k1

            pub = secp256k1.ec_pubkey_serialize(secp256k1.ec_pubkey_create(secret.to_bytes(32, "big")))
            node = self._branches[change] = (secret, chain_code, pub)
        return node

    def secret_at(self, change: int, index: int) -> bytes:
        """The 32-byte private key at origin/change/index (both non-hardened)."""
        secret, chain_code, pub = self._branch(change)
        child, _ = _ckd_priv(secret, chain_code, pub, index)
        return child.to_bytes(32, "big")


def _ckd_priv(secret: int, chain_code: bytes, pub: bytes, index: int) -> tuple[int, bytes]:
    if not 0 <= index < 0x80000000:
        raise ValueError("only non-hardened steps are derived here")
    digest = hmac.new(chain_code, pub + index.to_bytes(4, "big"), sha512).digest()
    tweak = int.from_bytes(digest[:32], "big")
    child = (tweak + secret) % SECP256K1_N
    if tweak >= SECP256K1_N or child == 0:  # probability ~2^-127: BIP-32 says skip the index
        raise Refused(f"BIP-32 index {index} gives an invalid key", code="invalid-child-key")
    return child, digest[32:]


def format_path(path: tuple[int, ...] | list[int], *, master: bool = False) -> str:
    """`84h/1h/0h/0/5` style (hardened steps marked with h); `m/84h/...` with `master=True`."""
    steps = "/".join(f"{p & 0x7FFFFFFF}h" if p & 0x80000000 else str(p) for p in path)
    if not master:
        return steps
    return f"m/{steps}" if steps else "m"
