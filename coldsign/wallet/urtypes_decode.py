"""Strict decoder of the UR registry types crypto-hdkey (BCR-2020-007), crypto-keypath,
crypto-output (BCR-2020-010) and crypto-account (BCR-2020-015) (pure).

Decoding is for untrusted input (a coordinator scanning another device's export): the bytes
are size-limited, must be in preferred serialization (they re-encode to the same bytes:
shortest forms, definite lengths, no duplicate map keys, no trailing bytes), and every tag,
key and type is checked; anything else raises QRDecodeError naming what was wrong. A decoded
output becomes descriptor text with `[fingerprint/path]xpub` origins. The tags, map keys,
limits and the choices made where the documents leave room are in coldsign.wallet.urtypes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from coldsign.keys.derive import format_path
from coldsign.network import Network
from coldsign.qr.errors import QRDecodeError
from coldsign.wallet.urtypes import (
    ACCOUNT_MASTER_FP, ACCOUNT_OUTPUTS, COIN_NETWORK, COIN_TYPE, H, HD_CHAIN_CODE, HD_CHILDREN,
    HD_IS_MASTER, HD_IS_PRIVATE, HD_KEY_DATA, HD_NAME, HD_NOTE, HD_ORIGIN, HD_PARENT_FP,
    HD_USE_INFO, KP_COMPONENTS, KP_DEPTH, KP_SOURCE_FP, MAX_MULTISIG_KEYS, MAX_OUTPUTS,
    MAX_PATH_COMPONENTS, MAX_REGISTRY_CBOR_BYTES, MAX_TEXT_CHARS, MULTI_KEYS, MULTI_THRESHOLD,
    TAG_ACCOUNT, TAG_ADDRESS, TAG_COININFO, TAG_COMBO, TAG_COSIGNER, TAG_ECKEY, TAG_HDKEY,
    TAG_KEYPATH, TAG_MULTI, TAG_OUTPUT, TAG_PK, TAG_PKH, TAG_RAW, TAG_SH, TAG_SORTEDMULTI,
    TAG_TR, TAG_WPKH, TAG_WSH)


@dataclass(frozen=True)
class HDKey:
    """A decoded crypto-hdkey. `origin` is None when the key carries none."""

    key_data: bytes
    chain_code: bytes | None
    testnet: bool
    origin: tuple[int, ...] | None
    source_fingerprint: bytes | None
    depth: int | None
    parent_fingerprint: bytes | None
    children: str | None            # e.g. "1/*", "<0;1>/*" (descriptor syntax)
    is_private: bool = False
    is_master: bool = False
    name: str | None = None

    def xpub(self) -> str:
        """BIP-32 serialization (xpub on mainnet, tpub on test networks). The child number is
        the last origin step; a depth given without the steps leaves it 0 (not recoverable)."""
        from embit import bip32, ec

        if self.chain_code is None:
            raise QRDecodeError("the key has no chain code: not an extended key")
        components = self.origin or ()
        depth = self.depth if self.depth is not None else len(components)
        parent = self.parent_fingerprint
        if parent is None and len(components) == 1 and self.source_fingerprint is not None:
            parent = self.source_fingerprint
        child = components[-1] if components and len(components) == depth else 0
        version = (Network.TEST if self.testnet else Network.MAIN).embit["xpub"]
        try:
            key = ec.PublicKey.parse(self.key_data)
            node = bip32.HDKey(key, self.chain_code, version=version, depth=depth,
                               fingerprint=parent or bytes(4), child_number=child)
            return node.to_base58()
        except Exception as err:  # embit: ValueError for a point off the curve
            raise QRDecodeError(f"crypto-hdkey key-data is not a valid public key: {err}") from None

    def key_expression(self, *, default_children: str | None = "<0;1>/*") -> str:
        """`[fingerprint/path]xpub/children` (origin brackets only when a fingerprint is known)."""
        text = self.xpub() if self.chain_code is not None else self.key_data.hex()
        if self.source_fingerprint is not None:
            steps = format_path(self.origin or ())
            text = f"[{self.source_fingerprint.hex()}{'/' + steps if steps else ''}]{text}"
        children = self.children if self.children is not None else (
            default_children if self.chain_code is not None else None)
        return f"{text}/{children}" if children else text


@dataclass(frozen=True)
class DecodedOutput:
    """A decoded crypto-output: descriptor text (without checksum), its keys, and whether it
    is a multisig cosigner key (`cosigner(...)`: no scripts of its own)."""

    text: str
    keys: tuple[HDKey | bytes, ...]
    cosigner: bool = False
    key_expressions: tuple[str, ...] = field(default=())

    @property
    def descriptor(self) -> str:
        """The descriptor with its BIP-380 checksum (cosigner records have none)."""
        if self.cosigner:
            raise QRDecodeError("a cosigner key is not a descriptor; use key_expressions")
        from coldsign.wallet.scriptexpr import descriptor_checksum

        return f"{self.text}#{descriptor_checksum(self.text)}"


@dataclass(frozen=True)
class DecodedAccount:
    master_fingerprint: bytes
    outputs: tuple[DecodedOutput, ...]


def _fail(what: str, message: str) -> QRDecodeError:
    return QRDecodeError(f"{what}: {message}")


def _load(data: bytes, what: str):
    import cbor2

    if len(data) > MAX_REGISTRY_CBOR_BYTES:
        raise _fail(what, f"{len(data)} bytes is above the limit of {MAX_REGISTRY_CBOR_BYTES}")
    if not data:
        raise _fail(what, "empty")
    try:
        item = cbor2.loads(bytes(data))
        same = cbor2.dumps(item, canonical=True) == data or cbor2.dumps(item) == data
    except RecursionError:
        raise _fail(what, "CBOR nested too deeply") from None
    except Exception as err:  # cbor2.CBORDecodeError and friends: malformed CBOR
        raise _fail(what, f"not valid CBOR ({err})") from None
    if not same:
        raise _fail(what, "CBOR not in preferred serialization (trailing bytes, duplicate map keys, "
                          "indefinite lengths or non-shortest forms)")
    return item


def _tag_of(item):
    import cbor2

    return item.tag if isinstance(item, cbor2.CBORTag) else None


def _map(item, what: str, allowed: set[int]) -> Mapping:
    if not isinstance(item, Mapping):
        raise _fail(what, f"expected a map, found {_kind(item)}")
    for key in item:
        if not isinstance(key, int) or isinstance(key, bool) or key not in allowed:
            raise _fail(what, f"unknown map key {_shown(key)}")
    return item


def _shown(value) -> str:
    """A short repr of an untrusted value for a message. NOTE: repr() of an integer of thousands of
    digits raises ValueError (Python's int/str limit), of a deep structure RecursionError."""
    try:
        text = repr(value)
    except (ValueError, RecursionError):
        return _kind(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _kind(item) -> str:
    tag = _tag_of(item)
    if tag is not None:
        return f"tag {tag}"
    if isinstance(item, Mapping):
        return "a map"
    return {bool: "a boolean", int: "an integer", bytes: "a byte string", str: "a text string",
            list: "an array", tuple: "an array"}.get(type(item), type(item).__name__)


def _uint(item, what: str, bits: int) -> int:
    if not isinstance(item, int) or isinstance(item, bool) or not 0 <= item < (1 << bits):
        raise _fail(what, f"expected an unsigned {bits}-bit integer, found {_kind(item)}")
    return item


def _fingerprint(item, what: str) -> bytes:
    value = _uint(item, what, 32)
    if value == 0:
        raise _fail(what, "a fingerprint is never 0")
    return value.to_bytes(4, "big")


def _bool(item, what: str) -> bool:
    if not isinstance(item, bool):
        raise _fail(what, f"expected a boolean, found {_kind(item)}")
    return item


def _bytes(item, what: str, size: int) -> bytes:
    if not isinstance(item, bytes) or len(item) != size:
        found = f"{len(item)} bytes" if isinstance(item, bytes) else _kind(item)
        raise _fail(what, f"expected {size} bytes, found {found}")
    return item


def _tagged(item, tag: int, what: str):
    if _tag_of(item) != tag:
        raise _fail(what, f"expected tag {tag}, found {_kind(item)}")
    return item.value


def _components(item, what: str) -> list:
    """[(index, hardened) | ("*", hardened) | ("pair", (i, h), (j, h))] from the flat array."""
    if not isinstance(item, (list, tuple)):
        raise _fail(what, f"components: expected an array, found {_kind(item)}")
    if len(item) > 2 * MAX_PATH_COMPONENTS:
        raise _fail(what, f"components: more than {MAX_PATH_COMPONENTS} steps")
    steps, i = [], 0
    while i < len(item):
        head = item[i]
        if isinstance(head, (list, tuple)) and len(head) == 4 and (i + 1 == len(item) or not isinstance(item[i + 1], bool)):
            a, b = (_uint(head[0], what, 31), _bool(head[1], what)), (_uint(head[2], what, 31), _bool(head[3], what))
            steps.append(("pair", a, b))
            i += 1
            continue
        if i + 1 >= len(item):
            raise _fail(what, f"components: step {len(steps) + 1} has no is-hardened flag")
        hardened = _bool(item[i + 1], f"{what} step {len(steps) + 1} is-hardened")
        if isinstance(head, (list, tuple)):
            if head:
                raise _fail(what, f"components: step {len(steps) + 1} is a range, which coldsign does not use")
            steps.append(("*", hardened))
        else:
            steps.append((_uint(head, f"{what} step {len(steps) + 1} child-index", 31), hardened))
        i += 2
    return steps


def _keypath(item, what: str) -> tuple[list, bytes | None, int | None]:
    doc = _map(_tagged(item, TAG_KEYPATH, what), what, {KP_COMPONENTS, KP_SOURCE_FP, KP_DEPTH})
    steps = _components(doc.get(KP_COMPONENTS, []), what)
    source = _fingerprint(doc[KP_SOURCE_FP], f"{what} source-fingerprint") if KP_SOURCE_FP in doc else None
    depth = _uint(doc[KP_DEPTH], f"{what} depth", 8) if KP_DEPTH in doc else None
    if not steps and source is None and depth is None:
        raise _fail(what, "a key path needs components, a source-fingerprint or a depth")
    return steps, source, depth


def _step_text(step) -> str:
    if step[0] == "pair":
        (a, ha), (b, hb) = step[1], step[2]
        return f"<{a}{'h' if ha else ''};{b}{'h' if hb else ''}>"
    index, hardened = step
    return f"{index}{'h' if hardened else ''}"


def decode_hdkey(item, network: Network | None = None, *, what: str = "crypto-hdkey",
                 account_fingerprint: bytes | None = None) -> HDKey:
    """A crypto-hdkey map (untagged). With `network`, its use-info must match it."""
    doc = _map(item, what, set(range(1, 11)))
    is_master = _bool(doc[HD_IS_MASTER], f"{what} is-master") if HD_IS_MASTER in doc else False
    is_private = _bool(doc[HD_IS_PRIVATE], f"{what} is-private") if HD_IS_PRIVATE in doc else False
    if HD_KEY_DATA not in doc:
        raise _fail(what, "key-data is missing")
    key_data = _bytes(doc[HD_KEY_DATA], f"{what} key-data", 33)
    if is_master:
        is_private = True
        if HD_CHAIN_CODE not in doc:
            raise _fail(what, "a master key needs its chain code")
    if is_private != (key_data[0] == 0):
        raise _fail(what, "key-data does not match is-private (private keys start with 0x00)")
    chain_code = _bytes(doc[HD_CHAIN_CODE], f"{what} chain-code", 32) if HD_CHAIN_CODE in doc else None
    testnet = False
    if HD_USE_INFO in doc:
        info = _map(_tagged(doc[HD_USE_INFO], TAG_COININFO, f"{what} use-info"), f"{what} use-info",
                    {COIN_TYPE, COIN_NETWORK})
        if _uint(info.get(COIN_TYPE, 0), f"{what} use-info type", 31) != 0:
            raise _fail(what, f"use-info is coin type {info[COIN_TYPE]}, not bitcoin (0)")
        net = info.get(COIN_NETWORK, 0)
        if net not in (0, 1) or isinstance(net, bool):
            raise _fail(what, f"use-info network {_shown(net)} is neither mainnet (0) nor testnet (1)")
        testnet = net == 1
    if network is not None and testnet != (network is not Network.MAIN):
        raise _fail(what, f"a {'testnet' if testnet else 'mainnet'} key, but the network is {network.value}")
    origin = source = depth = None
    if HD_ORIGIN in doc:
        steps, source, depth = _keypath(doc[HD_ORIGIN], f"{what} origin")
        if any(s[0] in ("*", "pair") for s in steps):
            raise _fail(what, "origin has a wildcard or pair step")
        origin = tuple(index | (H if hardened else 0) for index, hardened in steps)
    if source is None and account_fingerprint is not None and origin is not None:
        source = account_fingerprint
    children = None
    if HD_CHILDREN in doc:
        steps, _, _ = _keypath(doc[HD_CHILDREN], f"{what} children")
        children = "/".join(_step_text(s) for s in steps)
    parent = _fingerprint(doc[HD_PARENT_FP], f"{what} parent-fingerprint") if HD_PARENT_FP in doc else None
    name = doc.get(HD_NAME)
    if name is not None and (not isinstance(name, str) or len(name) > MAX_TEXT_CHARS):
        raise _fail(what, "name is not a short text")
    if HD_NOTE in doc and (not isinstance(doc[HD_NOTE], str) or len(doc[HD_NOTE]) > MAX_TEXT_CHARS):
        raise _fail(what, "note is not a short text")
    return HDKey(key_data, chain_code, testnet, origin, source, depth, parent, children,
                 is_private, is_master, name)


def _key_exp(item, network, what, account_fingerprint, *, public_only: bool):
    tag = _tag_of(item)
    if tag == TAG_HDKEY:
        key = decode_hdkey(item.value, network, what=what, account_fingerprint=account_fingerprint)
        if public_only and key.is_private:
            raise _fail(what, "carries a private key; an account export must hold public keys only")
        return key, key.key_expression()
    if tag == TAG_ECKEY:
        doc = _map(item.value, what, {1, 2, 3})
        if doc.get(2, False) is not False:
            raise _fail(what, "carries a private key; an account export must hold public keys only")
        if 1 in doc and doc[1] is not None:
            raise _fail(what, "curve other than secp256k1")
        data = _bytes(doc.get(3), f"{what} data", 33)
        if data[0] not in (2, 3):
            raise _fail(what, "crypto-eckey data is not a compressed public key")
        return data, data.hex()
    raise _fail(what, f"expected a key (tag 303 crypto-hdkey or 306 crypto-eckey), found {_kind(item)}")


class _OutputReader:
    def __init__(self, network: Network | None, account_fingerprint: bytes | None):
        self.network, self.account_fingerprint = network, account_fingerprint
        self.keys: list = []
        self.cosigner = False

    def key(self, item, what: str) -> str:
        key, text = _key_exp(item, self.network, what, self.account_fingerprint, public_only=True)
        self.keys.append(key)
        return text

    def script(self, item, what: str, depth: int = 0) -> str:
        import cbor2

        tag = _tag_of(item)
        if depth > 3:
            raise _fail(what, "script expressions nested too deeply")
        simple = {TAG_PK: "pk", TAG_PKH: "pkh", TAG_WPKH: "wpkh", TAG_COMBO: "combo", TAG_TR: "tr"}
        if tag in simple:
            return f"{simple[tag]}({self.key(item.value, f'{what} {simple[tag]}() key')})"
        if tag in (TAG_SH, TAG_WSH):
            name = "sh" if tag == TAG_SH else "wsh"
            inner = item.value
            if _tag_of(inner) in (TAG_HDKEY, TAG_ECKEY, TAG_COSIGNER):
                # a cosigner's account key (BCR-2020-015 carries it bare, BCR-2020-010 as cosigner())
                if _tag_of(inner) == TAG_COSIGNER:
                    inner = inner.value
                self.cosigner = True
                return f"{name}(cosigner({self.key(inner, f'{what} {name}() cosigner key')}))"
            return f"{name}({self.script(inner, f'{what} {name}()', depth + 1)})"
        if tag in (TAG_MULTI, TAG_SORTEDMULTI):
            name = "multi" if tag == TAG_MULTI else "sortedmulti"
            doc = _map(item.value, f"{what} {name}()", {MULTI_THRESHOLD, MULTI_KEYS})
            keys = doc.get(MULTI_KEYS)
            if not isinstance(keys, (list, tuple)) or not 1 <= len(keys) <= MAX_MULTISIG_KEYS:
                raise _fail(what, f"{name}() needs 1 to {MAX_MULTISIG_KEYS} keys")
            threshold = _uint(doc.get(MULTI_THRESHOLD), f"{what} {name}() threshold", 8)
            if not 1 <= threshold <= len(keys):
                raise _fail(what, f"{name}() threshold {threshold} is not between 1 and {len(keys)}")
            texts = [self.key(k, f"{what} {name}() key {i + 1}") for i, k in enumerate(keys)]
            return f"{name}({threshold},{','.join(texts)})"
        if tag == TAG_RAW:
            if not isinstance(item.value, bytes) or len(item.value) > 10_000:
                raise _fail(what, "raw() needs a script byte string")
            return f"raw({item.value.hex()})"
        if tag == TAG_COSIGNER:
            self.cosigner = True
            return f"cosigner({self.key(item.value, f'{what} cosigner key')})"
        if isinstance(item, cbor2.CBORTag) and tag == TAG_ADDRESS:
            raise _fail(what, "addr() outputs are not supported")
        raise _fail(what, f"expected a script expression (tags 400-410), found {_kind(item)}")


def _output(item, network, what, account_fingerprint) -> DecodedOutput:
    reader = _OutputReader(network, account_fingerprint)
    text = reader.script(item, what)
    exprs = tuple(k.key_expression() if isinstance(k, HDKey) else k.hex() for k in reader.keys)
    return DecodedOutput(text, tuple(reader.keys), reader.cosigner, exprs)


def decode_output(data: bytes, network: Network | None = None) -> DecodedOutput:
    """A crypto-output UR message (untagged at the top, as UR carries it; a 308 tag is accepted)."""
    item = _load(data, "crypto-output")
    if _tag_of(item) == TAG_OUTPUT:
        item = item.value
    return _output(item, network, "crypto-output", None)


def decode_account(data: bytes, network: Network | None = None) -> DecodedAccount:
    """A crypto-account UR message: master fingerprint and its output descriptors (each
    untagged, as BCR-2020-015's example has them, or tagged 308, as its CDDL says)."""
    what = "crypto-account"
    item = _load(data, what)
    if _tag_of(item) == TAG_ACCOUNT:
        item = item.value
    doc = _map(item, what, {ACCOUNT_MASTER_FP, ACCOUNT_OUTPUTS})
    if ACCOUNT_MASTER_FP not in doc or ACCOUNT_OUTPUTS not in doc:
        raise _fail(what, "needs master-fingerprint (1) and output-descriptors (2)")
    master = _fingerprint(doc[ACCOUNT_MASTER_FP], f"{what} master-fingerprint")
    outputs = doc[ACCOUNT_OUTPUTS]
    if not isinstance(outputs, (list, tuple)) or not 1 <= len(outputs) <= MAX_OUTPUTS:
        raise _fail(what, f"output-descriptors must be an array of 1 to {MAX_OUTPUTS} outputs")
    decoded = []
    for i, out in enumerate(outputs):
        if _tag_of(out) == TAG_OUTPUT:
            out = out.value
        decoded.append(_output(out, network, f"{what} output {i + 1}", master))
    return DecodedAccount(master, tuple(decoded))
