"""PSBT key types (BIP-174, BIP-370, BIP-371) and the checks of each field's key data and value.

Constants are named exactly as in the BIPs. `GLOBAL_FIELDS`, `INPUT_FIELDS` and `OUTPUT_FIELDS`
describe every key type coldsign understands: its name, the key data it takes, the check of its
value, and the PSBT versions that allow it. Unknown key types are not described here: the codec
keeps them verbatim.

Every check raises `FieldProblem(text)`; the codec prefixes the scope ("input 2") and the field name
so the user reads e.g. "input 2: PSBT_IN_WITNESS_UTXO value is truncated". Nothing here does I/O.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from typing import Callable

from embit.hashes import double_sha256

from coldsign.amounts import MAX_MONEY_SAT as MAX_MONEY

# --- global types -------------------------------------------------------------------------------
PSBT_GLOBAL_UNSIGNED_TX = 0x00
PSBT_GLOBAL_XPUB = 0x01
PSBT_GLOBAL_TX_VERSION = 0x02
PSBT_GLOBAL_FALLBACK_LOCKTIME = 0x03
PSBT_GLOBAL_INPUT_COUNT = 0x04
PSBT_GLOBAL_OUTPUT_COUNT = 0x05
PSBT_GLOBAL_TX_MODIFIABLE = 0x06
PSBT_GLOBAL_VERSION = 0xFB
PSBT_GLOBAL_PROPRIETARY = 0xFC

# --- per-input types ----------------------------------------------------------------------------
PSBT_IN_NON_WITNESS_UTXO = 0x00
PSBT_IN_WITNESS_UTXO = 0x01
PSBT_IN_PARTIAL_SIG = 0x02
PSBT_IN_SIGHASH_TYPE = 0x03
PSBT_IN_REDEEM_SCRIPT = 0x04
PSBT_IN_WITNESS_SCRIPT = 0x05
PSBT_IN_BIP32_DERIVATION = 0x06
PSBT_IN_FINAL_SCRIPTSIG = 0x07
PSBT_IN_FINAL_SCRIPTWITNESS = 0x08
PSBT_IN_POR_COMMITMENT = 0x09
PSBT_IN_RIPEMD160 = 0x0A
PSBT_IN_SHA256 = 0x0B
PSBT_IN_HASH160 = 0x0C
PSBT_IN_HASH256 = 0x0D
PSBT_IN_PREVIOUS_TXID = 0x0E
PSBT_IN_OUTPUT_INDEX = 0x0F
PSBT_IN_SEQUENCE = 0x10
PSBT_IN_REQUIRED_TIME_LOCKTIME = 0x11
PSBT_IN_REQUIRED_HEIGHT_LOCKTIME = 0x12
PSBT_IN_TAP_KEY_SIG = 0x13
PSBT_IN_TAP_SCRIPT_SIG = 0x14
PSBT_IN_TAP_LEAF_SCRIPT = 0x15
PSBT_IN_TAP_BIP32_DERIVATION = 0x16
PSBT_IN_TAP_INTERNAL_KEY = 0x17
PSBT_IN_TAP_MERKLE_ROOT = 0x18
PSBT_IN_PROPRIETARY = 0xFC

# --- per-output types ---------------------------------------------------------------------------
PSBT_OUT_REDEEM_SCRIPT = 0x00
PSBT_OUT_WITNESS_SCRIPT = 0x01
PSBT_OUT_BIP32_DERIVATION = 0x02
PSBT_OUT_AMOUNT = 0x03
PSBT_OUT_SCRIPT = 0x04
PSBT_OUT_TAP_INTERNAL_KEY = 0x05
PSBT_OUT_TAP_TREE = 0x06
PSBT_OUT_TAP_BIP32_DERIVATION = 0x07
PSBT_OUT_PROPRIETARY = 0xFC

LOCKTIME_THRESHOLD = 500_000_000
TAPROOT_CONTROL_MAX_NODES = 128


class FieldProblem(ValueError):
    """One field's key data or value breaks its BIP's format; the codec adds where and which."""


# --- byte reading -------------------------------------------------------------------------------

class Reader:
    """Reads a byte string front to back; every short read is a `FieldProblem`, never an IndexError."""

    def __init__(self, data: bytes, what: str = "value"):
        self.data = data
        self.pos = 0
        self.what = what

    @property
    def remaining(self) -> int:
        return len(self.data) - self.pos

    def read(self, n: int) -> bytes:
        if n < 0 or n > self.remaining:
            raise FieldProblem(f"{self.what} is truncated")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def compact_size(self) -> int:
        """A Bitcoin compact size; non-minimal encodings are refused (as Bitcoin Core does)."""
        first = self.read(1)[0]
        if first < 0xFD:
            return first
        width = {0xFD: 2, 0xFE: 4, 0xFF: 8}[first]
        value = int.from_bytes(self.read(width), "little")
        if value < {2: 0xFD, 4: 0x10000, 8: 0x100000000}[width]:
            raise FieldProblem(f"{self.what} has a non-minimal compact size")
        return value

    def bytes_with_length(self, limit: int | None = None) -> bytes:
        n = self.compact_size()
        if limit is not None and n > limit:
            raise FieldProblem(f"{self.what} declares {n} bytes, more than the limit of {limit}")
        return self.read(n)

    def end(self) -> None:
        if self.remaining:
            raise FieldProblem(f"{self.what} has {self.remaining} trailing bytes")


def compact_size(n: int) -> bytes:
    if n < 0xFD:
        return bytes([n])
    if n <= 0xFFFF:
        return b"\xfd" + n.to_bytes(2, "little")
    if n <= 0xFFFFFFFF:
        return b"\xfe" + n.to_bytes(4, "little")
    return b"\xff" + n.to_bytes(8, "little")


# --- transactions -------------------------------------------------------------------------------

def parse_transaction(data: bytes, *, allow_witness: bool, max_count: int):
    """Parse a network-serialized transaction into an embit `Transaction`, refusing trailing bytes.

    Our own reader (not embit's) because embit cannot read a transaction with zero inputs in the
    legacy format (the unsigned tx of a BIP-174 vector) and silently accepts truncated witnesses.
    `max_count` bounds the input and output counts before any list is built. With
    `allow_witness=False` the bytes are read in the old format only (as Bitcoin Core reads a PSBT's
    unsigned tx: 0x00 0x01 there means zero inputs, one output); if that fails but the witness
    format fits, the error says so.
    """
    if allow_witness:
        return _read_transaction(data, True, max_count)
    try:
        return _read_transaction(data, False, max_count)
    except FieldProblem:
        if data[4:6] == b"\x00\x01":
            try:
                _read_transaction(data, True, max_count)
            except FieldProblem:
                pass  # neither format fits: report the old-format problem below
            else:
                raise FieldProblem("transaction is in the witness serialization; "
                                   "it must use the old one (without witnesses)") from None
        raise


def _read_transaction(data: bytes, witness_format: bool, max_count: int):
    from embit.script import Script, Witness
    from embit.transaction import Transaction, TransactionInput, TransactionOutput

    r = Reader(data, "transaction")
    version = int.from_bytes(r.read(4), "little", signed=False)
    segwit = False
    if witness_format and r.remaining >= 2 and r.data[r.pos] == 0 and r.data[r.pos + 1] == 1:
        r.read(2)
        segwit = True
    n_in = r.compact_size()
    if n_in > max_count or n_in * 41 > r.remaining:
        raise FieldProblem(f"transaction declares {n_in} inputs, more than its bytes or the limit allow")
    vin = []
    for _ in range(n_in):
        txid = bytes(reversed(r.read(32)))
        vout = int.from_bytes(r.read(4), "little")
        script_sig = r.bytes_with_length()
        sequence = int.from_bytes(r.read(4), "little")
        vin.append(TransactionInput(txid, vout, Script(script_sig), sequence))
    n_out = r.compact_size()
    if n_out > max_count or n_out * 9 > r.remaining:
        raise FieldProblem(f"transaction declares {n_out} outputs, more than its bytes or the limit allow")
    vout_list = []
    for _ in range(n_out):
        value = int.from_bytes(r.read(8), "little")
        vout_list.append(TransactionOutput(value, Script(r.bytes_with_length())))
    if segwit:
        if n_in == 0:
            raise FieldProblem("transaction has the witness flag but no inputs")
        for txin in vin:
            txin.witness = Witness(parse_witness_items(r))
    locktime = int.from_bytes(r.read(4), "little")
    r.end()
    return Transaction(version=version, vin=vin, vout=vout_list, locktime=locktime)


def parse_witness_items(r: Reader) -> list[bytes]:
    count = r.compact_size()
    if count > r.remaining:
        raise FieldProblem(f"witness declares {count} items, more than its bytes")
    return [r.bytes_with_length() for _ in range(count)]


def serialize_witness(items: list[bytes]) -> bytes:
    return compact_size(len(items)) + b"".join(compact_size(len(i)) + i for i in items)


# --- value formats ------------------------------------------------------------------------------

def u32(value: bytes) -> int:
    if len(value) != 4:
        raise FieldProblem(f"value must be 4 bytes, got {len(value)}")
    return int.from_bytes(value, "little")


def i32(value: bytes) -> int:
    if len(value) != 4:
        raise FieldProblem(f"value must be 4 bytes, got {len(value)}")
    return int.from_bytes(value, "little", signed=True)


def amount(value: bytes) -> int:
    if len(value) != 8:
        raise FieldProblem(f"value must be an 8-byte amount, got {len(value)} bytes")
    sats = int.from_bytes(value, "little", signed=True)
    if not 0 <= sats <= MAX_MONEY:
        raise FieldProblem(f"amount {sats} sat is outside 0..21,000,000 BTC")
    return sats


def exact_compact(value: bytes) -> int:
    r = Reader(value)
    n = r.compact_size()
    r.end()
    return n


def witness_utxo(value: bytes) -> tuple[int, bytes]:
    r = Reader(value)
    sats = amount(r.read(8))
    script = r.bytes_with_length()
    r.end()
    return sats, script


def final_witness(value: bytes) -> list[bytes]:
    r = Reader(value)
    items = parse_witness_items(r)
    r.end()
    return items


def key_path(value: bytes) -> tuple[bytes, tuple[int, ...]]:
    """<4-byte fingerprint> <uint32 LE>* → (fingerprint, path)."""
    if len(value) < 4 or len(value) % 4:
        raise FieldProblem("value must be a 4-byte fingerprint followed by 4-byte path elements, "
                           f"got {len(value)} bytes")
    return value[:4], struct.unpack(f"<{len(value) // 4 - 1}I", value[4:])


def tap_key_path(value: bytes) -> tuple[list[bytes], bytes, tuple[int, ...]]:
    """<compact n> <32-byte leaf hash>*n <fingerprint> <path> → (leaf hashes, fingerprint, path)."""
    r = Reader(value)
    n = r.compact_size()
    if n * 32 > r.remaining:
        raise FieldProblem(f"value declares {n} leaf hashes, more than its bytes")
    hashes = [r.read(32) for _ in range(n)]
    fingerprint, path = key_path(r.read(r.remaining))
    return hashes, fingerprint, path


def ecdsa_signature(sig: bytes) -> bytes:
    """BIP-66 strict DER encoding followed by one sighash byte (what a scriptSig would push)."""
    if not 9 <= len(sig) <= 73:
        raise FieldProblem(f"signature must be 9..73 bytes (DER + sighash), got {len(sig)}")
    if sig[0] != 0x30 or sig[1] != len(sig) - 3:
        raise FieldProblem("signature is not DER (bad sequence header or length)")
    len_r = sig[3]
    if 5 + len_r >= len(sig):
        raise FieldProblem("signature is not DER (R overruns)")
    len_s = sig[5 + len_r]
    if len_r + len_s + 7 != len(sig):
        raise FieldProblem("signature is not DER (lengths do not add up)")
    for tag_at, length, start in ((2, len_r, 4), (4 + len_r, len_s, 6 + len_r)):
        if sig[tag_at] != 0x02 or length == 0:
            raise FieldProblem("signature is not DER (integer expected)")
        if sig[start] & 0x80:
            raise FieldProblem("signature is not DER (negative integer)")
        if length > 1 and sig[start] == 0 and not sig[start + 1] & 0x80:
            raise FieldProblem("signature is not DER (integer has excess padding)")
    return sig


def schnorr_signature(sig: bytes) -> bytes:
    if len(sig) < 64:
        raise FieldProblem(f"signature is too short: {len(sig)} bytes, expected 64 or 65")
    if len(sig) > 65:
        raise FieldProblem(f"signature is too long: {len(sig)} bytes, expected 64 or 65")
    if len(sig) == 65 and sig[64] == 0:
        raise FieldProblem("65-byte signature carries sighash 0x00, which must be implicit (BIP-341)")
    return sig


def xonly(value: bytes) -> bytes:
    if len(value) != 32:
        raise FieldProblem(f"value must be a 32-byte x-only public key, got {len(value)} bytes")
    return value


def hash32(value: bytes) -> bytes:
    if len(value) != 32:
        raise FieldProblem(f"value must be 32 bytes, got {len(value)}")
    return value


def tap_leaf_script(value: bytes) -> bytes:
    if not value:
        raise FieldProblem("value must be a script followed by a leaf version byte")
    return value


def tap_tree(value: bytes) -> list[tuple[int, int, bytes]]:
    """{<depth> <leaf version> <compact len> <script>}* in depth-first order forming a whole tree."""
    r = Reader(value)
    leaves: list[tuple[int, int, bytes]] = []
    open_depths: list[int] = []  # shift-reduce: adjacent equal depths are siblings
    while r.remaining:
        if open_depths == [0]:
            raise FieldProblem("taproot tree has leaves after the tree is complete")
        depth, version = r.read(1)[0], r.read(1)[0]
        if depth > TAPROOT_CONTROL_MAX_NODES:
            raise FieldProblem(f"taproot tree leaf depth {depth} exceeds 128")
        if version & 1:
            raise FieldProblem(f"taproot leaf version 0x{version:02x} is odd")
        leaves.append((depth, version, r.bytes_with_length()))
        open_depths.append(depth)
        while len(open_depths) >= 2 and open_depths[-1] == open_depths[-2] and open_depths[-1] > 0:
            open_depths[-2:] = [open_depths[-1] - 1]
    if not leaves:
        raise FieldProblem("taproot tree has no leaves")
    if open_depths != [0]:
        raise FieldProblem("taproot tree leaves do not form a complete tree")
    return leaves


def preimage_check(hash_fn: Callable[[bytes], bytes]) -> Callable[[bytes, bytes], None]:
    def check(keydata: bytes, value: bytes) -> None:
        if hash_fn(value) != keydata:
            raise FieldProblem("preimage does not hash to the key")
    return check


def _ripemd160(b: bytes) -> bytes:
    from embit.hashes import ripemd160

    return ripemd160(b)


def _hash160(b: bytes) -> bytes:
    return _ripemd160(hashlib.sha256(b).digest())


def _sha256(b: bytes) -> bytes:
    return hashlib.sha256(b).digest()


# --- key data formats ---------------------------------------------------------------------------

def check_pubkey(keydata: bytes) -> None:
    if not ((len(keydata) == 33 and keydata[0] in (2, 3))
            or (len(keydata) == 65 and keydata[0] in (4, 6, 7))):
        raise FieldProblem(f"key data must be a 33 or 65-byte public key, got {len(keydata)} bytes")


def check_none(keydata: bytes) -> None:
    if keydata:
        raise FieldProblem("key must have no key data")


def check_length(n: int, what: str) -> Callable[[bytes], None]:
    def check(keydata: bytes) -> None:
        if len(keydata) != n:
            raise FieldProblem(f"key data must be {what} ({n} bytes), got {len(keydata)} bytes")
    return check


def check_control_block(keydata: bytes) -> None:
    size = len(keydata)
    if size < 33 or (size - 33) % 32 or (size - 33) // 32 > TAPROOT_CONTROL_MAX_NODES:
        raise FieldProblem(f"key data must be a control block of 33 + 32*m bytes, got {size} bytes")


def check_proprietary(keydata: bytes) -> None:
    r = Reader(keydata, "proprietary key")
    r.bytes_with_length()
    r.compact_size()


def check_xpub_value(keydata: bytes, value: bytes) -> None:
    _, path = key_path(value)
    if len(path) != keydata[4]:
        raise FieldProblem(f"derivation path has {len(path)} elements but the xpub's depth is {keydata[4]}")


@dataclass(frozen=True)
class Field:
    """One known key type: name, key-data check, value check, and the versions allowing it."""

    name: str
    keydata: Callable[[bytes], None] = check_none
    value: Callable[[bytes], object] | None = None
    pair: Callable[[bytes, bytes], None] | None = None  # checks needing key data and value
    versions: tuple[int, ...] = (0, 2)
    required_in: tuple[int, ...] = ()


def _any(value: bytes) -> bytes:
    return value


GLOBAL_FIELDS: dict[int, Field] = {
    PSBT_GLOBAL_UNSIGNED_TX: Field("PSBT_GLOBAL_UNSIGNED_TX", versions=(0,), required_in=(0,)),
    PSBT_GLOBAL_XPUB: Field("PSBT_GLOBAL_XPUB", check_length(78, "a serialized extended public key"),
                            key_path, check_xpub_value),
    PSBT_GLOBAL_TX_VERSION: Field("PSBT_GLOBAL_TX_VERSION", value=i32, versions=(2,), required_in=(2,)),
    PSBT_GLOBAL_FALLBACK_LOCKTIME: Field("PSBT_GLOBAL_FALLBACK_LOCKTIME", value=u32, versions=(2,)),
    PSBT_GLOBAL_INPUT_COUNT: Field("PSBT_GLOBAL_INPUT_COUNT", value=exact_compact, versions=(2,),
                                   required_in=(2,)),
    PSBT_GLOBAL_OUTPUT_COUNT: Field("PSBT_GLOBAL_OUTPUT_COUNT", value=exact_compact, versions=(2,),
                                    required_in=(2,)),
    PSBT_GLOBAL_TX_MODIFIABLE: Field("PSBT_GLOBAL_TX_MODIFIABLE", value=lambda v: u8(v), versions=(2,)),
    PSBT_GLOBAL_VERSION: Field("PSBT_GLOBAL_VERSION", value=u32),
    PSBT_GLOBAL_PROPRIETARY: Field("PSBT_GLOBAL_PROPRIETARY", check_proprietary, _any),
}


def u8(value: bytes) -> int:
    if len(value) != 1:
        raise FieldProblem(f"value must be 1 byte, got {len(value)}")
    return value[0]


def time_locktime(value: bytes) -> int:
    t = u32(value)
    if t < LOCKTIME_THRESHOLD:
        raise FieldProblem(f"time-based locktime {t} is below 500000000")
    return t


def height_locktime(value: bytes) -> int:
    h = u32(value)
    if not 0 < h < LOCKTIME_THRESHOLD:
        raise FieldProblem(f"height-based locktime {h} is not between 1 and 499999999")
    return h


def _xonly_leafhash(keydata: bytes) -> None:
    check_length(64, "an x-only public key and a leaf hash")(keydata)


INPUT_FIELDS: dict[int, Field] = {
    PSBT_IN_NON_WITNESS_UTXO: Field("PSBT_IN_NON_WITNESS_UTXO"),  # value parsed by the codec
    PSBT_IN_WITNESS_UTXO: Field("PSBT_IN_WITNESS_UTXO", value=witness_utxo),
    PSBT_IN_PARTIAL_SIG: Field("PSBT_IN_PARTIAL_SIG", check_pubkey, ecdsa_signature),
    PSBT_IN_SIGHASH_TYPE: Field("PSBT_IN_SIGHASH_TYPE", value=u32),
    PSBT_IN_REDEEM_SCRIPT: Field("PSBT_IN_REDEEM_SCRIPT", value=_any),
    PSBT_IN_WITNESS_SCRIPT: Field("PSBT_IN_WITNESS_SCRIPT", value=_any),
    PSBT_IN_BIP32_DERIVATION: Field("PSBT_IN_BIP32_DERIVATION", check_pubkey, key_path),
    PSBT_IN_FINAL_SCRIPTSIG: Field("PSBT_IN_FINAL_SCRIPTSIG", value=_any),
    PSBT_IN_FINAL_SCRIPTWITNESS: Field("PSBT_IN_FINAL_SCRIPTWITNESS", value=final_witness),
    PSBT_IN_POR_COMMITMENT: Field("PSBT_IN_POR_COMMITMENT", value=_any),
    PSBT_IN_RIPEMD160: Field("PSBT_IN_RIPEMD160", check_length(20, "a RIPEMD160 hash"), _any,
                             preimage_check(_ripemd160)),
    PSBT_IN_SHA256: Field("PSBT_IN_SHA256", check_length(32, "a SHA256 hash"), _any,
                          preimage_check(_sha256)),
    PSBT_IN_HASH160: Field("PSBT_IN_HASH160", check_length(20, "a HASH160 hash"), _any,
                           preimage_check(_hash160)),
    PSBT_IN_HASH256: Field("PSBT_IN_HASH256", check_length(32, "a HASH256 hash"), _any,
                           preimage_check(double_sha256)),
    PSBT_IN_PREVIOUS_TXID: Field("PSBT_IN_PREVIOUS_TXID", value=hash32, versions=(2,), required_in=(2,)),
    PSBT_IN_OUTPUT_INDEX: Field("PSBT_IN_OUTPUT_INDEX", value=u32, versions=(2,), required_in=(2,)),
    PSBT_IN_SEQUENCE: Field("PSBT_IN_SEQUENCE", value=u32, versions=(2,)),
    PSBT_IN_REQUIRED_TIME_LOCKTIME: Field("PSBT_IN_REQUIRED_TIME_LOCKTIME", value=time_locktime,
                                          versions=(2,)),
    PSBT_IN_REQUIRED_HEIGHT_LOCKTIME: Field("PSBT_IN_REQUIRED_HEIGHT_LOCKTIME", value=height_locktime,
                                            versions=(2,)),
    PSBT_IN_TAP_KEY_SIG: Field("PSBT_IN_TAP_KEY_SIG", value=schnorr_signature),
    PSBT_IN_TAP_SCRIPT_SIG: Field("PSBT_IN_TAP_SCRIPT_SIG", _xonly_leafhash, schnorr_signature),
    PSBT_IN_TAP_LEAF_SCRIPT: Field("PSBT_IN_TAP_LEAF_SCRIPT", check_control_block, tap_leaf_script),
    PSBT_IN_TAP_BIP32_DERIVATION: Field("PSBT_IN_TAP_BIP32_DERIVATION",
                                        check_length(32, "an x-only public key"), tap_key_path),
    PSBT_IN_TAP_INTERNAL_KEY: Field("PSBT_IN_TAP_INTERNAL_KEY", value=xonly),
    PSBT_IN_TAP_MERKLE_ROOT: Field("PSBT_IN_TAP_MERKLE_ROOT", value=hash32),
    PSBT_IN_PROPRIETARY: Field("PSBT_IN_PROPRIETARY", check_proprietary, _any),
}

OUTPUT_FIELDS: dict[int, Field] = {
    PSBT_OUT_REDEEM_SCRIPT: Field("PSBT_OUT_REDEEM_SCRIPT", value=_any),
    PSBT_OUT_WITNESS_SCRIPT: Field("PSBT_OUT_WITNESS_SCRIPT", value=_any),
    PSBT_OUT_BIP32_DERIVATION: Field("PSBT_OUT_BIP32_DERIVATION", check_pubkey, key_path),
    PSBT_OUT_AMOUNT: Field("PSBT_OUT_AMOUNT", value=amount, versions=(2,), required_in=(2,)),
    PSBT_OUT_SCRIPT: Field("PSBT_OUT_SCRIPT", value=_any, versions=(2,), required_in=(2,)),
    PSBT_OUT_TAP_INTERNAL_KEY: Field("PSBT_OUT_TAP_INTERNAL_KEY", value=xonly),
    PSBT_OUT_TAP_TREE: Field("PSBT_OUT_TAP_TREE", value=tap_tree),
    PSBT_OUT_TAP_BIP32_DERIVATION: Field("PSBT_OUT_TAP_BIP32_DERIVATION",
                                         check_length(32, "an x-only public key"), tap_key_path),
    PSBT_OUT_PROPRIETARY: Field("PSBT_OUT_PROPRIETARY", check_proprietary, _any),
}

# What BIP-174's input finalizer clears once PSBT_IN_FINAL_SCRIPTSIG/WITNESS are set; the UTXOs,
# the BIP-370 fields that build the transaction, proprietary and unknown entries stay.
FINALIZER_CLEARS = (
    PSBT_IN_PARTIAL_SIG, PSBT_IN_SIGHASH_TYPE, PSBT_IN_REDEEM_SCRIPT, PSBT_IN_WITNESS_SCRIPT,
    PSBT_IN_BIP32_DERIVATION, PSBT_IN_POR_COMMITMENT, PSBT_IN_RIPEMD160, PSBT_IN_SHA256,
    PSBT_IN_HASH160, PSBT_IN_HASH256, PSBT_IN_TAP_KEY_SIG, PSBT_IN_TAP_SCRIPT_SIG,
    PSBT_IN_TAP_LEAF_SCRIPT, PSBT_IN_TAP_BIP32_DERIVATION, PSBT_IN_TAP_INTERNAL_KEY,
    PSBT_IN_TAP_MERKLE_ROOT,
)


def field_name(fields: dict[int, Field], keytype: int) -> str:
    known = fields.get(keytype)
    return known.name if known else f"key type 0x{keytype:02x}"
