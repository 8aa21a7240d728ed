"""BIP-380..386 script expressions: the descriptor checksum, the parser, the output scripts.

`parse_expression` reads any descriptor text of the kinds coldsign supports — `wpkh`,
`sh(wpkh)`, `wsh(multi|sortedmulti)` with at most 15 keys, `tr(KEY)` (key path only) — with its
keys parsed by `coldsign.wallet.keyexpr`; everything else is refused with an "unsupported"
DescriptorError, every malformed text with a DescriptorError naming what and where. The official
BIP vectors run through this layer. `script_from_pubkeys` turns derived SEC keys into the
scriptPubKey (and redeem/witness script or taproot internal key) of each kind.

embit supplies the checksum polynomial and point arithmetic (libsecp256k1); its exceptions
never leave this module raw. Pure: no I/O.
"""

from __future__ import annotations

import hashlib
import re
from typing import NamedTuple

from coldsign.errors import DescriptorError
from coldsign.limits import LIMITS
from coldsign.wallet.keyexpr import KeyExpression, parse_key_expression

KINDS = ("wpkh", "sh-wpkh", "wsh-multi", "wsh-sortedmulti", "tr")
CHECKSUM_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_TAPTWEAK_TAG = hashlib.sha256(b"TapTweak").digest()


# ---------------------------------------------------------------- checksum (BIP-380)

def descriptor_checksum(body: str) -> str:
    """The 8-character BIP-380 checksum of a descriptor without its `#...` suffix."""
    from embit.descriptor.checksum import checksum
    from embit.descriptor.errors import DescriptorError as EmbitDescriptorError

    for position, char in enumerate(body):
        if ord(char) > 127:
            raise DescriptorError(f"invalid character {char!r} at position {position} of the descriptor",
                                  hint="descriptors are ASCII; retype or re-export it")
    try:
        return checksum(body)
    except EmbitDescriptorError as e:
        raise DescriptorError(f"invalid character in the descriptor: {e}") from None


def split_checksum(text: str) -> tuple[str, str | None]:
    """(body, checksum or None) after verifying a present checksum; a wrong one names the expected."""
    text = text.strip()
    if len(text) > LIMITS.descriptor_max_chars:
        raise DescriptorError(f"the descriptor is longer than the limit of {LIMITS.descriptor_max_chars} characters")
    body, sep, given = text.partition("#")
    expected = descriptor_checksum(body)
    if not sep:
        return body, None
    if len(given) != 8:
        raise DescriptorError(f"the checksum after '#' must be 8 characters, got {len(given)}; "
                              f"expected #{expected}")
    if any(c not in CHECKSUM_CHARSET for c in given):
        raise DescriptorError(f"the checksum #{given} has characters outside the checksum alphabet; "
                              f"expected #{expected}")
    if given != expected:
        raise DescriptorError(f"descriptor checksum mismatch: got #{given}, expected #{expected}",
                              hint="the descriptor was changed or mistyped; compare it with the original")
    return body, given


# ---------------------------------------------------------------- script expressions

class Call(NamedTuple):
    name: str
    args: tuple  # of Call | str


def _split_args(text: str, *, where: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        if char in "([{<":
            depth += 1
        elif char in ")]}>":
            depth -= 1
            if depth < 0:
                raise DescriptorError(f"unbalanced {char!r} in {where}")
        elif char == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    if depth != 0:
        raise DescriptorError(f"unbalanced brackets in {where}")
    parts.append(text[start:])
    return parts


_CALL = re.compile(r"([a-z_]+)\((.*)\)\Z", re.S)


def _parse_call(text: str) -> Call | str:
    """`name(arg,...)` into a Call tree; anything else stays a string (a key or number)."""
    text = text.strip()
    if text.startswith("{"):
        return text  # a tap tree; only ever refused as unsupported
    match = _CALL.match(text)
    if not match:
        if "(" in text or ")" in text:
            raise DescriptorError(f"malformed expression {text[:40]!r}: unbalanced parentheses")
        return text
    name, inner = match.groups()
    if inner.startswith("{"):
        return Call(name, (inner,))
    return Call(name, tuple(_parse_call(a) for a in _split_args(inner, where=f"{name}()")))


def _unsupported(what: str) -> DescriptorError:
    return DescriptorError(f"unsupported descriptor: {what}",
                           hint="coldsign wallets are wpkh, sh(wpkh), wsh(multi|sortedmulti) with "
                                "at most 15 keys, or tr(KEY) without a script tree")


class Expression(NamedTuple):
    """A parsed descriptor of a supported kind."""

    kind: str
    threshold: int | None
    keys: tuple[KeyExpression, ...]
    checksum: str | None

    def scripts_at(self, index: int | None = None, branch: int = 0) -> "OutputScripts":
        """The output scripts at `index` through the generic derivation (vectors, cross-checks)."""
        return script_from_pubkeys(self.kind, self.threshold,
                                   [k.pubkey_at(index, branch) for k in self.keys])


def _key_arg(arg, *, where: str, **kw) -> KeyExpression:
    if isinstance(arg, Call):
        raise DescriptorError(f"{where} must be a key expression, not {arg.name}()")
    return parse_key_expression(arg, where=where, **kw)


def parse_expression(text: str, *, allow_private: bool = False) -> Expression:
    """Check the checksum, parse, and classify. Supported kinds only; see the module docstring."""
    body, given = split_checksum(text)
    tree = _parse_call(body)
    if not isinstance(tree, Call):
        raise DescriptorError("a descriptor starts with a script expression such as wpkh( or wsh(")
    kw = {"allow_private": allow_private}
    name, args = tree.name, tree.args
    if name == "wpkh":
        if len(args) != 1:
            raise DescriptorError(f"wpkh() takes one key, got {len(args)} arguments")
        return Expression("wpkh", None, (_key_arg(args[0], where="wpkh() key", **kw),), given)
    if name == "sh":
        inner = args[0] if len(args) == 1 else None
        if isinstance(inner, Call) and inner.name == "wpkh" and len(inner.args) == 1:
            return Expression("sh-wpkh", None, (_key_arg(inner.args[0], where="sh(wpkh()) key", **kw),), given)
        if len(args) != 1 or not isinstance(inner, Call):
            raise DescriptorError("sh() takes one script expression")
        if inner.name in ("sh", "tr"):
            raise DescriptorError(f"{inner.name}() cannot be nested inside sh()")
        if inner.name in ("multi", "sortedmulti"):
            _multisig("sh-" + inner.name, inner.args, given, kw, allow_uncompressed=True)
        raise _unsupported(f"sh({inner.name}(...))")
    if name == "wsh":
        inner = args[0] if len(args) == 1 else None
        if len(args) != 1 or not isinstance(inner, Call):
            raise DescriptorError("wsh() takes one script expression, not a key")
        if inner.name in ("multi", "sortedmulti"):
            return _multisig("wsh-" + inner.name, inner.args, given, kw)
        if inner.name in ("wsh", "sh", "wpkh", "tr"):
            raise DescriptorError(f"{inner.name}() cannot be nested inside wsh()")
        raise _unsupported(f"wsh({inner.name}(...))")
    if name == "tr":
        if len(args) != 1:
            raise _unsupported("tr() with a script tree (coldsign signs the key path only)")
        return Expression("tr", None, (_key_arg(args[0], where="tr() key", allow_xonly=True, **kw),), given)
    if name in ("multi", "sortedmulti"):
        _multisig(name, args, given, kw, allow_uncompressed=True)  # specific errors first
    if name in ("pk", "pkh", "multi", "sortedmulti", "combo", "raw", "addr", "rawtr", "multi_a",
                "sortedmulti_a", "musig"):
        raise _unsupported(f"{name}() at the top level")
    raise DescriptorError(f"unknown script expression {name}()")


def _multisig(kind: str, args: tuple, given: str | None, kw: dict, *,
              allow_uncompressed: bool = False) -> Expression:
    if len(args) < 2:
        raise DescriptorError(f"{kind.split('-')[-1]}() needs a threshold and at least one key")
    threshold_text, key_args = args[0], args[1:]
    if not isinstance(threshold_text, str) or not re.fullmatch(r"[0-9]+", threshold_text):
        raise DescriptorError(f"multisig threshold {str(threshold_text)[:20]!r} is not a number")
    if len(threshold_text) > 4:  # NOTE: int() of thousands of digits raises ValueError (exit 70)
        raise DescriptorError(f"multisig threshold {threshold_text[:12]}... ({len(threshold_text)} digits) "
                              f"is larger than the {len(key_args)} keys")
    threshold = int(threshold_text)
    if len(key_args) > LIMITS.multisig_max_keys:
        raise _unsupported(f"multisig with {len(key_args)} keys (at most {LIMITS.multisig_max_keys})")
    if threshold < 1:
        raise DescriptorError("multisig threshold must be at least 1")
    if threshold > len(key_args):
        raise DescriptorError(f"multisig threshold {threshold} is larger than the {len(key_args)} keys")
    keys = tuple(_key_arg(a, where=f"key {i}", allow_uncompressed=allow_uncompressed, **kw)
                 for i, a in enumerate(key_args, 1))
    return Expression(kind, threshold, keys, given)


# ---------------------------------------------------------------- scripts from pubkeys

class OutputScripts(NamedTuple):
    script_pubkey: bytes
    redeem_script: bytes | None
    witness_script: bytes | None
    tap_internal_key: bytes | None


def _hash160(data: bytes) -> bytes:
    return hashlib.new("ripemd160", hashlib.sha256(data).digest()).digest() if _HAS_RIPEMD else _embit_h160(data)


def _embit_h160(data: bytes) -> bytes:
    from embit.hashes import hash160

    return hash160(data)


try:
    hashlib.new("ripemd160")
    _HAS_RIPEMD = True
except ValueError:  # OpenSSL 3 without the legacy provider
    _HAS_RIPEMD = False


def taproot_output_key(internal_xonly: bytes) -> bytes:
    """BIP-341 output key with no script tree: P + hash_TapTweak(P)·G, x-only."""
    from embit.util import secp256k1

    tweak = hashlib.sha256(_TAPTWEAK_TAG + _TAPTWEAK_TAG + internal_xonly).digest()
    try:
        point = secp256k1.ec_pubkey_add(secp256k1.ec_pubkey_parse(b"\x02" + internal_xonly), tweak)
    except ValueError:  # probability ~2^-128
        raise DescriptorError("taproot tweak out of range for this key") from None
    return secp256k1.ec_pubkey_serialize(point)[1:33]


def script_from_pubkeys(kind: str, threshold: int | None, pubkeys: list[bytes]) -> OutputScripts:
    """The scriptPubKey (and redeem/witness script or internal key) from the derived SEC keys."""
    if kind == "wpkh":
        return OutputScripts(b"\x00\x14" + _hash160(pubkeys[0]), None, None, None)
    if kind == "sh-wpkh":
        redeem = b"\x00\x14" + _hash160(pubkeys[0])
        return OutputScripts(b"\xa9\x14" + _hash160(redeem) + b"\x87", redeem, None, None)
    if kind in ("wsh-multi", "wsh-sortedmulti"):
        keys = sorted(pubkeys) if kind == "wsh-sortedmulti" else pubkeys
        witness = bytes([0x50 + threshold]) + b"".join(b"\x21" + k for k in keys) + bytes([0x50 + len(keys), 0xAE])
        return OutputScripts(b"\x00\x20" + hashlib.sha256(witness).digest(), None, witness, None)
    if kind == "tr":
        internal = pubkeys[0][1:33]
        return OutputScripts(b"\x51\x20" + taproot_output_key(internal), None, None, internal)
    raise DescriptorError(f"unknown descriptor kind {kind!r}")
