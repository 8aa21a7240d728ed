"""BIP-380 key expressions: key origins, BIP-32 extended keys and the KEY grammar.

`parse_key_expression` reads one KEY of a descriptor — hex, x-only, WIF, xpub/xprv, an origin
`[fingerprint/path]`, derivation steps and one `<a;b>` multipath step — and
`parse_extended_key` checks every BIP-32 validity rule of a base58 key. Malformed text raises a
DescriptorError naming what and where; a key itself is never echoed (it may be private).

embit supplies base58/BIP-32 nodes, WIF and point arithmetic (libsecp256k1); its exceptions
never leave this module raw. Pure: no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from coldsign.errors import DescriptorError
from coldsign.keys.derive import format_path

HARDENED = 0x80000000
_SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_VERSIONS = {  # version bytes -> (network family, private?)
    bytes.fromhex("0488b21e"): ("main", False), bytes.fromhex("0488ade4"): ("main", True),
    bytes.fromhex("043587cf"): ("test", False), bytes.fromhex("04358394"): ("test", True),
}
_SLIP132 = {"ypub", "zpub", "Ypub", "Zpub", "upub", "vpub", "Upub", "Vpub"}


# ---------------------------------------------------------------- BIP-32 extended keys

def parse_extended_key(text: str, *, allow_private: bool = False):
    """An embit HDKey from base58, with every BIP-32 validity rule checked (test vector 5).

    The key itself is never echoed in a message (it may be an xprv).
    """
    from embit import base58, ec
    from embit.bip32 import HDKey

    if text[:4] in _SLIP132:
        raise DescriptorError(f"SLIP-132 key ({text[:4]}...) is not accepted in descriptors",
                              hint="convert it to xpub/tpub; the script type is in the descriptor")
    try:
        data = base58.decode_check(text)
    except Exception:  # embit raises ValueError/AssertionError for bad base58 or checksum
        raise DescriptorError("extended key has an invalid base58 checksum (mistyped?)") from None
    if len(data) != 78:
        raise DescriptorError(f"extended key is {len(data)} bytes, BIP-32 keys are 78")
    version, depth, parent, child, key = data[:4], data[4], data[5:9], data[9:13], data[45:78]
    if version not in _VERSIONS:
        raise DescriptorError(f"unknown extended key version {version.hex()}",
                              hint="use an xpub (main) or tpub (test, signet, regtest)")
    private = _VERSIONS[version][1]
    if private:
        if key[0] != 0:
            raise DescriptorError("private extended key version with a public key "
                                  f"(prefix {key[0]:02x} instead of 00)")
        scalar = int.from_bytes(key[1:], "big")
        if not 0 < scalar < _SECP256K1_N:
            raise DescriptorError("private key is not in 1..n-1")
    else:
        if key[0] not in (2, 3):
            raise DescriptorError(f"public extended key version with an invalid key prefix {key[0]:02x}")
        try:
            ec.PublicKey.parse(key)
        except Exception:
            raise DescriptorError("public key is not a point on secp256k1") from None
    if depth == 0 and parent != b"\x00\x00\x00\x00":
        raise DescriptorError("zero depth with a non-zero parent fingerprint")
    if depth == 0 and child != b"\x00\x00\x00\x00":
        raise DescriptorError("zero depth with a non-zero child index")
    if private and not allow_private:
        raise DescriptorError("private extended key (xprv/tprv) in a wallet descriptor",
                              hint="register the public descriptor: the seed stays on the signer")
    try:
        return HDKey.parse(data)
    except Exception as e:
        raise DescriptorError(f"extended key rejected: {e}") from None


def extended_key_network(hd) -> str:
    """'main' or 'test' (test, signet and regtest share tpub) from the version bytes."""
    return _VERSIONS[hd.version][0]


# ---------------------------------------------------------------- key expressions (BIP-380)

@dataclass(frozen=True)
class KeyOrigin:
    """Where a key sits below a master: the master's fingerprint and the path to the key."""

    fingerprint: bytes  # 4 bytes
    path: tuple[int, ...]  # hardened = index | 0x80000000

    def path_str(self) -> str:
        return format_path(self.path, master=True)

    def __str__(self) -> str:
        return "/".join([self.fingerprint.hex(), format_path(self.path)]) if self.path else self.fingerprint.hex()


_INDEX = re.compile(r"(0|[1-9][0-9]*)(['h]?)\Z")


def _path_element(text: str, *, where: str) -> int:
    match = _INDEX.match(text)
    if not match:
        if text == "":
            raise DescriptorError(f"empty path element in {where} (a doubled or trailing '/')")
        raise DescriptorError(f"path element {text!r} in {where} is not an index "
                              "(a number, optionally followed by h or ')")
    digits = match.group(1)
    # NOTE: more than 10 digits is out of range anyway; int() of thousands of digits would raise ValueError
    value = int(digits) if len(digits) <= 10 else HARDENED
    if value >= HARDENED:
        shown = digits if len(digits) <= 20 else f"{digits[:12]}... ({len(digits)} digits)"
        raise DescriptorError(f"derivation index {shown} in {where} is out of range (max {HARDENED - 1})")
    return value | (HARDENED if match.group(2) else 0)


MULTIPATH = "multipath"
WILDCARD = "*"
WILDCARD_HARDENED = "*h"


@dataclass(frozen=True)
class KeyExpression:
    """One parsed KEY: origin, the key (embit HDKey, PublicKey or PrivateKey), derivation steps.

    Steps are ints, ("multipath", (a, b, ...)), "*" or "*h".
    """

    origin: KeyOrigin | None
    key: object
    steps: tuple
    xonly: bool = False

    @property
    def is_extended(self) -> bool:
        from embit.bip32 import HDKey

        return isinstance(self.key, HDKey)

    @property
    def is_private(self) -> bool:
        return bool(self.key.is_private)

    def pubkey_at(self, index: int | None = None, branch: int = 0) -> bytes:
        """The SEC pubkey this expression gives at `index` (generic, unhurried path)."""
        if not self.is_extended:
            key = self.key.get_public_key() if self.is_private else self.key
            return key.sec()
        path = []
        for step in self.steps:
            if step == WILDCARD:
                path.append(index)
            elif step == WILDCARD_HARDENED:
                path.append(index | HARDENED)
            elif isinstance(step, tuple):
                path.append(step[1][branch])
            else:
                path.append(step)
        if any(i >= HARDENED for i in path) and not self.is_private:
            raise DescriptorError("a hardened step cannot be derived from a public key")
        try:
            return self.key.derive(path).sec()
        except Exception as e:
            raise DescriptorError(f"derivation failed: {e}") from None


def parse_key_expression(text: str, *, allow_private: bool = False, allow_uncompressed: bool = False,
                         allow_xonly: bool = False, where: str = "key") -> KeyExpression:
    """A BIP-380 KEY expression. `where` names it in messages ("key 2")."""
    from embit import ec

    origin = None
    rest = text
    if "]" in rest and not rest.startswith("["):
        raise DescriptorError(f"{where}: ']' without a '[' starting the key origin")
    if rest.startswith("["):
        close = rest.find("]")
        if close < 0:
            raise DescriptorError(f"{where}: the key origin '[' is not closed with ']'")
        inner, rest = rest[1:close], rest[close + 1:]
        if rest.startswith("["):
            raise DescriptorError(f"{where}: more than one key origin")
        fp_text, *elements = inner.split("/")
        if len(fp_text) != 8 or not all(c in "0123456789abcdefABCDEF" for c in fp_text):
            raise DescriptorError(f"{where}: the origin fingerprint {fp_text!r} must be 8 hex characters")
        origin = KeyOrigin(bytes.fromhex(fp_text),
                           tuple(_path_element(e, where=f"{where}'s origin") for e in elements))
    if rest == "":
        raise DescriptorError(f"{where}: a key origin without a key")
    key_text, *step_texts = rest.split("/")
    steps: list = []
    for i, step in enumerate(step_texts):
        last = i == len(step_texts) - 1
        if step in ("*", "*'", "*h"):
            if not last:
                raise DescriptorError(f"{where}: '*' must be the last derivation step")
            steps.append(WILDCARD if step == "*" else WILDCARD_HARDENED)
        elif step.startswith("<") and step.endswith(">"):
            if any(isinstance(s, tuple) for s in steps):
                raise DescriptorError(f"{where}: only one <a;b> multipath step is allowed")
            parts = step[1:-1].split(";")
            values = tuple(_path_element(p, where=f"{where}'s multipath step") for p in parts)
            if len(values) < 2 or len(set(values)) != len(values):
                raise DescriptorError(f"{where}: a multipath step needs two or more distinct indexes")
            steps.append((MULTIPATH, values))
        else:
            steps.append(_path_element(step, where=f"{where}'s derivation"))
    xonly = False
    if key_text[1:4] in ("pub", "prv") and len(key_text) > 100:
        key = parse_extended_key(key_text, allow_private=allow_private)
    elif len(key_text) in (64, 66, 130) and all(c in "0123456789abcdefABCDEF" for c in key_text):
        if len(key_text) == 64:
            if not allow_xonly:
                raise DescriptorError(f"{where}: x-only public keys are only allowed inside tr()")
            key_text, xonly = "02" + key_text, True
        if key_text[:2] == "04" and not allow_uncompressed:
            raise DescriptorError(f"{where}: uncompressed public key (segwit and taproot need compressed keys)")
        try:
            key = ec.PublicKey.parse(bytes.fromhex(key_text))
        except Exception:
            raise DescriptorError(f"{where}: the hex public key is not a point on secp256k1") from None
    else:
        try:
            key = ec.PrivateKey.from_wif(key_text)
        except Exception:
            raise DescriptorError(f"{where}: not a public key, extended key or WIF private key") from None
        if not allow_private:
            raise DescriptorError(f"{where}: WIF private key in a wallet descriptor",
                                  hint="register the public descriptor: the seed stays on the signer")
        if not key.compressed and not allow_uncompressed:
            raise DescriptorError(f"{where}: uncompressed private key (segwit and taproot need compressed keys)")
    if steps and not (hasattr(key, "derive")):
        raise DescriptorError(f"{where}: only extended keys can have derivation steps")
    return KeyExpression(origin=origin, key=key, steps=tuple(steps), xonly=xonly)
