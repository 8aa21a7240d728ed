"""Regtest block assembly: coinbase, witness commitment, merkle root, header, proof of work.

Pure: takes transactions (embit objects or raw bytes) and chain facts (tip hash, height, the
last block times, the fee total) and returns a `RegtestBlock`; it never reads the chain.

What Bitcoin Core's consensus code asks of a block on regtest, and where it is met here:
- BIP34: the coinbase scriptSig starts with the block height as `CScript() << height`
  (`bip34_height_push`; heights 1–16 are the opcodes OP_1…OP_16).
- BIP141: when any transaction carries witness data, the coinbase has an output
  `OP_RETURN 0x24 aa21a9ed <SHA256d(witness merkle root || reserved value)>` and its input
  witness holds the 32-byte reserved value (`witness_commitment_script`).
- the header time is above the median of the last 11 block times (`next_timestamp`).
- the header hash meets the target of `REGTEST_BITS` (`grind`: about two tries on regtest).
- the coinbase pays at most the subsidy (halving every 150 blocks on regtest) plus the fees.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from io import BytesIO
from typing import Sequence

from embit.hashes import double_sha256

COIN = 100_000_000
REGTEST_HALVING_INTERVAL = 150
REGTEST_BITS = 0x207FFFFF
INITIAL_SUBSIDY = 50 * COIN
COINBASE_MATURITY = 100
# Version with the BIP9 top bits set and no deployment signalled (≥ 4 as BIP65 requires).
BLOCK_VERSION = 0x20000000
WITNESS_COMMITMENT_HEADER = bytes.fromhex("aa21a9ed")
WITNESS_RESERVED_VALUE = bytes(32)
MEDIAN_TIME_SPAN = 11
# The largest block Core accepts (4M weight units); a template above this cannot be valid.
MAX_BLOCK_BYTES = 4_000_000

OP_0 = 0x00
OP_1 = 0x51
OP_RETURN = 0x6A


def block_subsidy(height: int) -> int:
    """New coins a regtest block at `height` may create (Core's GetBlockSubsidy)."""
    halvings = height // REGTEST_HALVING_INTERVAL
    if halvings >= 64:
        return 0
    return INITIAL_SUBSIDY >> halvings


def script_num(n: int) -> bytes:
    """Minimal little-endian sign-magnitude encoding (Core's CScriptNum::serialize)."""
    if n == 0:
        return b""
    negative = n < 0
    magnitude = abs(n)
    out = bytearray()
    while magnitude:
        out.append(magnitude & 0xFF)
        magnitude >>= 8
    if out[-1] & 0x80:
        out.append(0x80 if negative else 0x00)
    elif negative:
        out[-1] |= 0x80
    return bytes(out)


def bip34_height_push(height: int) -> bytes:
    """The script Core expects at the start of a coinbase scriptSig: `CScript() << height`."""
    if height < 0:
        raise ValueError("a block height is never negative")
    if height == 0:
        return bytes([OP_0])
    if height <= 16:
        return bytes([OP_1 + height - 1])
    data = script_num(height)
    return bytes([len(data)]) + data


def coinbase_script_sig(height: int) -> bytes:
    # The extra OP_0 keeps the scriptSig within Core's 2..100 byte rule for heights 1–16.
    return bip34_height_push(height) + bytes([OP_0])


def merkle_root(hashes: Sequence[bytes]) -> bytes:
    """Bitcoin's merkle root over 32-byte hashes in internal byte order (odd level: last twice)."""
    if not hashes:
        raise ValueError("a merkle tree needs at least one leaf")
    level = list(hashes)
    while len(level) > 1:
        if len(level) % 2:
            level.append(level[-1])
        level = [double_sha256(level[i] + level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


def txid_internal(tx) -> bytes:
    """The transaction hash in internal byte order (no witness)."""
    return tx.hash()


def wtxid_internal(tx) -> bytes:
    return double_sha256(tx.serialize())


def witness_root(transactions: Sequence) -> bytes:
    """BIP141 witness merkle root: the coinbase's wtxid counts as 32 zero bytes."""
    leaves = [bytes(32)] + [wtxid_internal(tx) for tx in transactions[1:]]
    return merkle_root(leaves)


def witness_commitment_script(witness_merkle_root: bytes,
                              reserved_value: bytes = WITNESS_RESERVED_VALUE) -> bytes:
    commitment = double_sha256(witness_merkle_root + reserved_value)
    return bytes([OP_RETURN, 0x24]) + WITNESS_COMMITMENT_HEADER + commitment


def median_time_past(times: Sequence[int]) -> int:
    """Median of the last 11 block times (fewer near genesis), as Core's GetMedianTimePast."""
    recent = sorted(times[-MEDIAN_TIME_SPAN:])
    if not recent:
        raise ValueError("median time past needs at least the tip's time")
    return recent[len(recent) // 2]


def next_timestamp(times: Sequence[int], now: int) -> int:
    """max(now, median-time-past + 1): valid, and it advances slowly when blocks come fast,
    so a long burst of blocks stays far from Core's 2-hour "time-too-new" limit."""
    return max(now, median_time_past(times) + 1)


def target_of(bits: int) -> int:
    exponent, mantissa = bits >> 24, bits & 0x007FFFFF
    return mantissa << (8 * (exponent - 3)) if exponent > 3 else mantissa >> (8 * (3 - exponent))


def has_witness(tx) -> bool:
    return any(len(inp.witness.items) for inp in tx.vin)


@dataclass
class RegtestBlock:
    """A block: header fields and embit transactions (the first is the coinbase)."""

    prev_hash: bytes  # internal byte order
    timestamp: int
    transactions: list = field(default_factory=list)
    version: int = BLOCK_VERSION
    bits: int = REGTEST_BITS
    nonce: int = 0
    merkle: bytes = bytes(32)

    def header(self) -> bytes:
        return (self.version.to_bytes(4, "little") + self.prev_hash + self.merkle
                + self.timestamp.to_bytes(4, "little") + self.bits.to_bytes(4, "little")
                + self.nonce.to_bytes(4, "little"))

    @property
    def hash(self) -> str:
        """The block hash as displayed (big-endian hex)."""
        return double_sha256(self.header())[::-1].hex()

    @property
    def coinbase(self):
        return self.transactions[0]

    def serialize(self) -> bytes:
        from embit import compact

        return (self.header() + compact.to_bytes(len(self.transactions))
                + b"".join(tx.serialize() for tx in self.transactions))

    def seal(self) -> "RegtestBlock":
        """Recompute the merkle root and grind the nonce: call after changing transactions."""
        self.merkle = merkle_root([txid_internal(tx) for tx in self.transactions])
        self.nonce = grind(self.header()[:76], self.bits)
        return self

    @classmethod
    def parse(cls, raw: bytes) -> "RegtestBlock":
        """Parse a serialized block; ValueError on truncated, trailing or malformed bytes."""
        from embit import compact
        from embit.base import EmbitError
        from embit.transaction import Transaction

        if len(raw) < 81:
            raise ValueError(f"a block is at least 81 bytes, got {len(raw)}")
        if len(raw) > MAX_BLOCK_BYTES:
            raise ValueError(f"a block is at most {MAX_BLOCK_BYTES} bytes, got {len(raw)}")
        stream = BytesIO(raw[80:])
        try:
            count = compact.read_from(stream)
            if count < 1 or count > len(raw):
                raise ValueError(f"a block holds 1..n transactions, this one claims {count}")
            txs = [Transaction.read_from(stream) for _ in range(count)]
        except (EmbitError, IndexError, ValueError, TypeError) as e:
            raise ValueError(f"malformed block transactions: {e}") from e
        if stream.read(1):
            raise ValueError("unexpected bytes after the last transaction of the block")
        h = raw[:80]
        block = cls(prev_hash=h[4:36], timestamp=int.from_bytes(h[68:72], "little"),
                    transactions=txs, version=int.from_bytes(h[0:4], "little"),
                    bits=int.from_bytes(h[72:76], "little"),
                    nonce=int.from_bytes(h[76:80], "little"), merkle=h[36:68])
        # embit reads short fields at the end of a stream without complaint: only an exact
        # round trip proves the bytes were a whole, canonically encoded block.
        if block.serialize() != bytes(raw):
            raise ValueError("malformed block transactions: truncated or non-canonical bytes")
        return block


def grind(header76: bytes, bits: int) -> int:
    """The first nonce whose header hash meets the target of `bits`."""
    target = target_of(bits)
    for nonce in range(2**32):
        digest = double_sha256(header76 + nonce.to_bytes(4, "little"))
        if int.from_bytes(digest, "little") <= target:
            return nonce
    raise ValueError("no nonce meets the target; change the time or the coinbase and retry")


def build_coinbase(height: int, payout_script: bytes, value: int, transactions: Sequence,
                   *, witness_commitment: bool = True):
    """The coinbase for a block holding `transactions` (the non-coinbase ones, in order)."""
    from embit.script import Script, Witness
    from embit.transaction import Transaction, TransactionInput, TransactionOutput

    vin = [TransactionInput(bytes(32), 0xFFFFFFFF, Script(coinbase_script_sig(height)),
                            0xFFFFFFFF)]
    vout = [TransactionOutput(value, Script(payout_script))]
    coinbase = Transaction(version=2, vin=vin, vout=vout, locktime=0)
    if witness_commitment:
        root = witness_root([coinbase, *transactions])
        vout.append(TransactionOutput(0, Script(witness_commitment_script(root))))
        vin[0].witness = Witness([WITNESS_RESERVED_VALUE])
    return coinbase


def assemble_block(*, prev_hash: bytes, height: int, timestamp: int, payout_script: bytes,
                   transactions: Sequence = (), fees: int = 0,
                   witness_commitment: bool = True) -> RegtestBlock:
    """A sealed block on `prev_hash` (internal byte order) at `height`.

    `transactions` are embit Transactions or raw bytes; the coinbase pays the subsidy plus
    `fees` to `payout_script`. The witness commitment is always added by default (Core accepts
    it in blocks without witness data, and requires it in blocks with some).
    """
    from embit.transaction import Transaction

    if fees < 0:
        raise ValueError("the fee total is never negative")
    txs = [Transaction.parse(t) if isinstance(t, (bytes, bytearray)) else t for t in transactions]
    coinbase = build_coinbase(height, payout_script, block_subsidy(height) + fees, txs,
                              witness_commitment=witness_commitment)
    block = RegtestBlock(prev_hash=prev_hash, timestamp=timestamp, transactions=[coinbase, *txs])
    return block.seal()
